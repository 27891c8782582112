"""Shape API documents into rows: company id added, status flattened, timestamps parsed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from dlt.common.normalizers.naming.snake_case import NamingConvention

from .timestamps import parse_timestamp

_NAMING = NamingConvention()

# Fields holding timestamps or dates; others are left as the API sent them.
_TIME_SUFFIXES = ("At", "Date")
_TIME_NAMES = frozenset({"date"})


def is_time_field(key: str) -> bool:
    return key in _TIME_NAMES or key.endswith(_TIME_SUFFIXES)


def flatten_status(value: Any) -> Any:
    """`requestStatus` is a string in live data but `{name, value}` in the spec: keep a string
    either way (`OnApproval` becomes `onApproval`, as live data spells it)."""
    if isinstance(value, dict):
        name = value.get("name")
        if isinstance(name, str) and name:
            return name[0].lower() + name[1:]
        raw = value.get("value")
        return None if raw is None else str(raw)
    return value


def _convert(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _convert_field(key, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_convert(item) for item in value]
    return value


def _convert_field(key: str, value: Any) -> Any:
    if isinstance(value, str) and is_time_field(key):
        parsed = parse_timestamp(value)
        return value if parsed is None else parsed
    if key == "requestStatus":
        return flatten_status(value)
    return _convert(value)


COMPANY_FIELD = "companyId"


def with_company(document: Mapping[str, Any], company_id: str) -> Mapping[str, Any]:
    """The API leaves `companyId` out (or empty) on some types: the company it was listed under
    fills it in. Both sinks use this rule; the Arrow page path applies it vectorised."""
    if document.get(COMPANY_FIELD):
        return document
    return {**document, COMPANY_FIELD: company_id}


def prepare_row(raw: Mapping[str, Any], company_id: str) -> dict[str, Any]:
    """A root row: every field converted, `companyId` present."""
    return _convert(dict(with_company(raw, company_id)))  # type: ignore[no-any-return]


def modified_at(row: Mapping[str, Any]) -> datetime | None:
    value = row.get("modifiedAt")
    if isinstance(value, datetime):
        return value
    return parse_timestamp(value) if isinstance(value, str) else None


def versions(documents: Iterable[Mapping[str, Any]]) -> Iterator[tuple[object, datetime | None]]:
    """Each document's (requestId, modifiedAt): what a CompanyCursor decides by."""
    return ((document.get("requestId"), modified_at(document)) for document in documents)


def count_rows(table: str, rows: Iterable[Mapping[str, Any]], counts: Counter[str]) -> None:
    """Count rows per table the way dlt will unnest them (lists of objects become child tables)."""
    for row in rows:
        counts[table] += 1
        for key, value in row.items():
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                count_rows(f"{table}__{_NAMING.normalize_identifier(key)}", value, counts)
