"""Explicit Arrow types for a document type's pages, so Arrow's JSON reader guesses nothing it knows."""

from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa
import pyarrow.json as pj


class PageSchema:
    """The Arrow types of one document type's fields, learned from pages json parsed.

    Arrow's reader guesses a timestamp for text such as `2025-01-02`, losing the text; with
    every field it has seen typed explicitly (text as text), only a new field can be guessed.
    A page read before the schema knew its fields teaches it, in the fetch thread that read it,
    and is then read again by Arrow: so the pages fetched meanwhile, and that page, skip the
    Python path (a quarter of a full load's pages took it when only the extract thread taught).
    """

    def __init__(self) -> None:
        self._fields: dict[str, Any] = {}
        self._learning = threading.Lock()  # fetch threads teach it at once
        # The JSON reader's options with the explicit schema, built once per change (building them
        # costs 0.3 ms, a third of a small page's read). Read by fetch threads; replaced, never changed.
        self.explicit: pj.ParseOptions | None = None

    def learn(self, documents: list[dict[str, Any]]) -> pj.ParseOptions:
        """Only json-parsed pages teach (the first ones, and those Arrow refused): rebuilding
        the schema each time costs less than telling whether it changed. Returns the new options."""
        with self._learning:
            for document in documents:
                _learn_object(self._fields, document)
            documents_type = pa.list_(_struct_type(self._fields))
            schema = pa.schema([("payload", documents_type), ("continuationToken", pa.string())])
            self.explicit = pj.ParseOptions(
                newlines_in_values=True, explicit_schema=schema, unexpected_field_behavior="infer"
            )
            return self.explicit


_CONFLICT = "conflict"  # a field seen with types Arrow cannot hold in one column: left to inference


def _learn_object(fields: dict[str, Any], document: dict[str, Any]) -> None:
    for key, value in document.items():
        if value is None:
            continue
        seen = fields.get(key)
        if seen is _CONFLICT:
            continue
        fields[key] = _merge(seen, value)


def _merge(seen: Any, value: Any) -> Any:
    """The learned type of a field: a pa.DataType for scalars, a dict for objects, ("list", item) for lists."""
    if isinstance(value, dict):
        if seen is None:
            seen = {}
        if not isinstance(seen, dict):
            return _CONFLICT
        _learn_object(seen, value)
        return seen
    if isinstance(value, list):
        if seen is None:
            seen = ("list", None)
        if not isinstance(seen, tuple):
            return _CONFLICT
        item = seen[1]
        for element in value:
            if element is not None and item is not _CONFLICT:
                item = _merge(item, element)
        return ("list", item)
    kind = _scalar_type(value)
    if seen is None:
        return kind
    if not isinstance(seen, pa.DataType) or not isinstance(kind, pa.DataType):
        return _CONFLICT
    if seen.equals(kind):
        return kind
    if {str(seen), str(kind)} == {"int64", "double"}:
        return pa.float64()
    return _CONFLICT


def _scalar_type(value: Any) -> pa.DataType | str:
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        return pa.int64() if -(2**63) <= value < 2**63 else _CONFLICT
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, str):
        return pa.string()
    return _CONFLICT


def _struct_type(fields: dict[str, Any]) -> pa.StructType:
    members = []
    for key, learned in fields.items():
        kind = _arrow_type(learned)
        if kind is not None:
            members.append(pa.field(key, kind))
    return pa.struct(members)


def _arrow_type(learned: Any) -> pa.DataType | None:
    if isinstance(learned, dict):
        return _struct_type(learned)
    if isinstance(learned, tuple):
        item = _arrow_type(learned[1]) if learned[1] is not None else None
        return pa.list_(item) if item is not None else None
    if isinstance(learned, pa.DataType):
        return learned
    return None
