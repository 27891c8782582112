"""Document pages parsed by Arrow's JSON reader and unnested with Arrow compute.

Parsing runs in the fetch threads with the GIL released, and unnesting makes no Python
object per value, so the extract thread stays free for dlt. A page this path does not
handle exactly like `ArrowDocuments.add` (a field of mixed types within the page, a list of
lists, a field the schema does not know yet that Arrow reads as a timestamp) is refused whole
and takes the Python path: the tables, columns and values are the same either way.
"""

from __future__ import annotations

import functools
import io
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from ..pages import payload_of
from ..records import flatten_status
from ..settings import MODIFIED_FIELD
from ..timestamps import parse_timestamp

ColumnArrays = dict[str, pa.Array]


class NotArrowReady(Exception):
    """The page goes the Python way."""


@dataclass(frozen=True)
class ArrowPage:
    """One page of documents as an Arrow struct array, and the continuation token."""

    documents: pa.StructArray
    continuation_token: str | None
    body: bytes  # for the Python path, should this page need it

    def __len__(self) -> int:
        return len(self.documents)

    def modified_times(self) -> list[datetime | None]:
        """Each document's `modifiedAt`, parsed as the Python path parses it."""
        if MODIFIED_FIELD not in {field.name for field in self.documents.type}:
            return [None] * len(self.documents)
        values = self.documents.field(MODIFIED_FIELD).to_pylist()
        return [parse_timestamp(value) if isinstance(value, str) else None for value in values]

    def request_ids(self) -> list[object]:
        if "requestId" not in {field.name for field in self.documents.type}:
            return [None] * len(self.documents)
        return self.documents.field("requestId").to_pylist()  # type: ignore[no-any-return]

    def admitted(self, keep: list[bool]) -> ArrowPage:
        """This page with only the documents `keep` marks."""
        if all(keep):
            return self
        if not any(keep):  # the usual case of a lookback re-read: a zero-copy slice, no filter kernel
            return ArrowPage(self.documents.slice(0, 0), self.continuation_token, self.body)
        return ArrowPage(self.documents.filter(pa.array(keep, type=pa.bool_())), self.continuation_token, self.body)

    def json_documents(self) -> list[dict[str, Any]]:
        """The page as json parses it, for the Python path (Arrow read it, so it is valid JSON)."""
        return payload_of(json.loads(self.body))


def parse_page(body: bytes, options: pj.ParseOptions) -> ArrowPage | None:
    """A paged body `{"payload": [...], "continuationToken": ...}`, or None when Arrow cannot read it
    the way json would (the caller then parses it with json, which also judges truncation)."""
    try:
        table = pj.read_json(
            io.BytesIO(body),
            read_options=pj.ReadOptions(use_threads=False, block_size=max(len(body) + 1, 1 << 16)),
            parse_options=options,  # an explicit schema: PageSchema.explicit
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if table.num_rows != 1 or "payload" not in table.column_names:
        return None
    payload = table.column("payload").combine_chunks()
    if not pa.types.is_list(payload.type) or payload.null_count:
        return None
    documents = payload.flatten()
    if pa.types.is_null(documents.type) and len(documents) == 0:
        documents = pa.array([], type=pa.struct([]))
    if not pa.types.is_struct(documents.type) or documents.null_count:
        return None
    token = None
    if "continuationToken" in table.column_names:
        value = table.column("continuationToken")[0].as_py()
        if value is not None and not isinstance(value, str):
            return None
        token = value
    return ArrowPage(documents, token, body)


def list_positions(lists: pa.ListArray, parents: pa.Array) -> pa.Array:
    """Each flattened value's index within its own list (dlt's `_dlt_list_idx`)."""
    offsets = lists.offsets.cast(pa.int64())
    first, last = offsets[0].as_py(), offsets[-1].as_py()
    return pc.subtract(pa.array(range(first, last), type=pa.int64()), pc.take(offsets, parents))


def status_text(status: pa.StructArray) -> pa.Array:
    """`requestStatus` objects as text, by the one rule both paths share (records.flatten_status);
    a page holds a hundred of them, so the Python objects cost nothing worth saving."""
    return pa.array([flatten_status(value) for value in status.to_pylist()], type=pa.string())


SCALAR_CHECKS: tuple[Callable[[pa.DataType], bool], ...] = (
    pa.types.is_string,
    pa.types.is_int64,
    pa.types.is_float64,
    pa.types.is_boolean,
)


@functools.cache
def is_plain_scalar(kind: pa.DataType) -> bool:
    """Asked for every field of every page: a handful of distinct types, so remembered."""
    return any(check(kind) for check in SCALAR_CHECKS)


@dataclass
class StagedPage:
    """One page unnested, table by table (parents first), not yet part of the batch."""

    tables: dict[str, ColumnArrays]
    parents: dict[str, str]
    timed: dict[str, set[str]]
    counts: Counter[str]
