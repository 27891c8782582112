"""Every version of every document the pipeline has seen, append-only: the `request_versions` table.

A document table keeps the latest version of each document (a merge). Beside it, each loaded
version adds one row keyed by (company_id, request_id, modified_at) with its status, total,
currency, a digest of its line items and when it was first seen; dlt's insert-only merge keeps
the first row of a key and never rewrites it, so a sweep or a lookback that loads a version again
changes nothing. The `request_history` view (pipelines/warehouse/views.py) turns the rows into
valid_from/valid_to ranges.

The digest is the MD5 of the line items in list order, each as description, account code,
quantity (in ten-thousandths), item price and amount (in cents), so both sinks, Python and Arrow,
compute the same text from the same document.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.schema.typing import TTableSchemaColumns

from .nullability import with_hinted_nullability
from .records import flatten_status, modified_at
from .report import RunReport
from .settings import DocumentType, TDataType

HISTORY_TABLE = "request_versions"
HISTORY_KEY = ("company_id", "request_id", "modified_at")
# line item fields in the digest, and the factor each number is scaled by before rounding
DIGEST_FIELDS: tuple[tuple[str, int | None], ...] = (
    ("description", None),
    ("accountCode", None),
    ("quantity", 10_000),
    ("itemPrice", 100),
    ("amount", 100),
)
SCHEMA = pa.schema(
    [
        ("document_type", pa.string()),
        ("company_id", pa.string()),
        ("request_id", pa.string()),
        ("modified_at", pa.timestamp("us", tz="UTC")),
        ("request_status", pa.string()),
        ("total", pa.float64()),
        ("currency_code", pa.string()),
        ("line_items_digest", pa.string()),
        ("first_seen_at", pa.timestamp("us", tz="UTC")),
    ]
)
DLT_TYPES: dict[str, TDataType] = {"string": "text", "double": "double"}


def history_columns() -> TTableSchemaColumns:
    columns: TTableSchemaColumns = {}
    for field in SCHEMA:
        kind: TDataType = "timestamp" if pa.types.is_timestamp(field.type) else DLT_TYPES[str(field.type)]
        columns[field.name] = {"name": field.name, "data_type": kind, "nullable": field.name not in HISTORY_KEY}
    return columns


class VersionLog:
    """The version rows of one resource's loaded documents, handed to dlt with each flush; each
    company's rows are counted in the run report like any table's."""

    def __init__(self, document_type: DocumentType | None, report: RunReport | None = None) -> None:
        self._resource = document_type.resource if document_type is not None else ""
        self._on = document_type is not None
        self._report = report
        # rows as columns of Python values until flush: an Arrow table per page cost 0.5 ms, and a
        # quiet run over many companies is mostly pages of one or two documents
        self._columns: list[list[Any]] = [[] for _ in SCHEMA]

    @classmethod
    def off(cls) -> VersionLog:
        """A log that keeps nothing (`keep_history = false`)."""
        return cls(None)

    def add_documents(self, company_id: str, documents: Sequence[Mapping[str, Any]], first_seen: datetime) -> None:
        """Documents as json parsed them (the row sink, and pages Arrow did not read)."""
        if not self._on:
            return
        started = time.perf_counter()
        try:
            self._add_documents(company_id, documents, first_seen)
        finally:
            self._spent(started)

    def _spent(self, started: float) -> None:
        """The run's `history` phase: a duration, not a time of day, so not the clock seam's."""
        if self._report is not None:
            self._report.history_seconds += time.perf_counter() - started

    def _add_documents(self, company_id: str, documents: Sequence[Mapping[str, Any]], first_seen: datetime) -> None:
        kept = [(document, modified_at(document)) for document in documents]
        kept = [(document, modified) for document, modified in kept if modified is not None]
        if not kept:
            return
        rows = [document for document, _modified in kept]
        self._append(
            company_id,
            [document.get("requestId") for document in rows],
            [modified for _document, modified in kept],
            [flatten_status(document.get("requestStatus")) for document in rows],
            [number(document.get("total")) for document in rows],
            [text(document.get("currencyCode")) for document in rows],
            [digest_of(document.get("lineItems")) for document in rows],
            first_seen,
        )

    def add_arrow(
        self, company_id: str, documents: pa.StructArray, modified: list[datetime | None], first_seen: datetime
    ) -> None:
        """Documents Arrow parsed (`modified`: their modifiedAt, as the cursor read them)."""
        if not self._on or len(documents) == 0:
            return
        started = time.perf_counter()
        try:
            self._add_arrow(company_id, documents, modified, first_seen)
        finally:
            self._spent(started)

    def _add_arrow(
        self, company_id: str, documents: pa.StructArray, modified: list[datetime | None], first_seen: datetime
    ) -> None:
        fields = {field.name for field in documents.type}

        def values(name: str) -> list[Any]:
            return documents.field(name).to_pylist() if name in fields else [None] * len(documents)

        digests = arrow_digests(documents.field("lineItems")) if "lineItems" in fields else [None] * len(documents)
        with_time = [i for i, value in enumerate(modified) if value is not None]
        pick = (lambda items: [items[i] for i in with_time]) if len(with_time) < len(documents) else (lambda x: x)
        self._append(
            company_id,
            pick(values("requestId")),
            pick(modified),
            pick([flatten_status(value) for value in values("requestStatus")]),
            pick([number(value) for value in values("total")]),
            pick([text(value) for value in values("currencyCode")]),
            pick(digests),
            first_seen,
        )

    def _append(
        self,
        company_id: str,
        request_ids: list[Any],
        modified: list[Any],
        statuses: list[Any],
        totals: list[float | None],
        currencies: list[str | None],
        digests: list[str | None],
        first_seen: datetime,
    ) -> None:
        count = len(request_ids)
        if count == 0:
            return
        if self._report is not None:
            self._report.counter(company_id)[HISTORY_TABLE] += count
        rows: tuple[list[Any], ...] = (
            [self._resource] * count,
            [company_id] * count,
            [str(value) for value in request_ids],
            modified,
            [None if s is None else str(s) for s in statuses],
            totals,
            currencies,
            digests,
            [first_seen] * count,
        )
        for column, values in zip(self._columns, rows, strict=True):
            column.extend(values)

    def flush(self) -> Iterator[Any]:
        if not self._columns[0]:
            return
        started = time.perf_counter()
        columns, self._columns = self._columns, [[] for _ in SCHEMA]
        table = pa.table(
            [pa.array(values, field.type) for values, field in zip(columns, SCHEMA, strict=True)], schema=SCHEMA
        )
        hints = history_hints()
        table = with_hinted_nullability(table, hints["columns"])
        self._spent(started)
        yield dlt.mark.with_hints(table, dlt.mark.make_hints(**hints), create_table_variant=True)


def history_hints() -> dict[str, Any]:
    """The table's hints: insert-only, so the first row of a version is kept and never rewritten."""
    return {
        "table_name": HISTORY_TABLE,
        "primary_key": list(HISTORY_KEY),
        "write_disposition": {"disposition": "merge", "strategy": "insert-only"},
        "columns": history_columns(),
    }


def number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _scaled(value: Any, factor: int | None) -> str:
    if factor is None:
        return value if isinstance(value, str) else ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    return str(round(float(value) * factor))


def digest_of(lines: Any) -> str | None:
    """The digest of one document's `lineItems` (None when it has none at all)."""
    if not isinstance(lines, list):
        return None
    texts = []
    for line in lines:
        item = line if isinstance(line, dict) else {}
        texts.append("\x1f".join(_scaled(item.get(name), factor) for name, factor in DIGEST_FIELDS))
    return hashlib.md5("\n".join(texts).encode(), usedforsecurity=False).hexdigest()


def arrow_digests(lines: pa.Array) -> list[str | None]:
    """`digest_of` for a page's `lineItems` column: the texts made with Arrow compute, then hashed."""
    if not pa.types.is_list(lines.type):
        return [None] * len(lines)
    lengths = pc.fill_null(pc.list_value_length(lines), 0)
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum(lengths).cast(pa.int32())])
    items = lines.flatten()
    if pa.types.is_struct(items.type):
        names = {field.name for field in items.type}
        parts = [
            _arrow_part(items.field(name) if name in names else None, factor, len(items))
            for name, factor in DIGEST_FIELDS
        ]
        texts = pc.binary_join_element_wise(*parts, "\x1f")
    else:
        texts = pa.array(["\x1f".join("" for _ in DIGEST_FIELDS)] * len(items), pa.string())
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, texts, mask=lines.is_null()), "\n")
    return [
        None if value is None else hashlib.md5(value.encode(), usedforsecurity=False).hexdigest()
        for value in joined.to_pylist()
    ]


def _arrow_part(values: pa.Array | None, factor: int | None, count: int) -> pa.Array:
    if values is None:
        return pa.array([""] * count, pa.string())
    if factor is None:
        return pc.fill_null(values, "") if pa.types.is_string(values.type) else pa.array([""] * count, pa.string())
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        return pa.array([""] * count, pa.string())
    scaled = pc.round(pc.multiply(values.cast(pa.float64()), float(factor)), round_mode="half_to_even")
    return pc.fill_null(scaled.cast(pa.int64()).cast(pa.string()), "")
