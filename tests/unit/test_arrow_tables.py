"""Arrow batches against dlt's own row normaliser, on documents the sandbox never sends.

Both paths load the same pages into DuckDB files of their own; the warehouses must be equal.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
import pytest

from approvalmax_pipeline.sources.approvalmax import ExtractOptions, documents_resource
from approvalmax_pipeline.sources.approvalmax.arrow.pages import ArrowPage, parse_page
from approvalmax_pipeline.sources.approvalmax.arrow.schema import PageSchema
from approvalmax_pipeline.sources.approvalmax.arrow.tables import ArrowDocuments, RowIds
from approvalmax_pipeline.sources.approvalmax.pages import Page, read_envelope
from approvalmax_pipeline.sources.approvalmax.settings import DOCUMENT_TYPES

from ..warehouse_compare import differences

BILLS = DOCUMENT_TYPES[0]


def body_of(page: list[dict[str, Any]]) -> bytes:
    return json.dumps({"payload": page, "continuationToken": None}).encode()


class PagesClient:
    """Stands in for ApprovalMaxClient: every company gets the same pages, raw, as the client gives them."""

    refused_filters: frozenset[str] = frozenset()

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages

    def in_flight(self, companies: int) -> int:
        return 2

    def documents(self, company_id: str, path: str, params: dict[str, str]) -> Iterator[Page]:
        for page in self.pages:
            yield read_envelope(body_of(page), datetime(2025, 6, 1, tzinfo=UTC))


def odd_documents() -> list[list[dict[str, Any]]]:
    return [
        [
            {
                "requestId": "r1",
                "modifiedAt": "2025-01-02T03:04:05.1234567Z",
                "total": 10,  # a whole number in a double column
                "requestStatus": {"name": "OnApproval", "value": 1},
                "requester": {"userId": "u1", "address": {"city": "Wellington"}},  # nested objects
                "tags": ["a", "b"],  # a list of plain values
                "lineItems": [
                    {"amount": 1.5, "tracking": [{"categoryName": "Region", "optionName": "North"}]},
                    {"amount": 2, "tracking": []},
                ],
                "neverSet": None,
                "newCount": 3,
            },
            {
                "requestId": "r2",
                "modifiedAt": "2025-01-03T00:00:00+13:00",
                "total": "12.5",  # a number as text
                "requestStatus": "approved",
                "contact": None,
                "lineItems": [],
                "events": [{"eventType": "x", "eventDate": "2025-01-01T00:00:00Z", "isSystem": True}],
                "newCount": 4,
                "customFlag": True,
            },
        ],
        [
            {
                "requestId": "r3",
                "modifiedAt": "2025-01-04T00:00:00Z",
                "total": "not a number",  # goes to a variant column
                "requester": {"userId": "u2"},
                "attachments": [{"attachmentId": "a1", "fileSize": 7}, {"attachmentId": "a2", "fileSize": 7.5}],
                "exchangeRate": True,  # a boolean in a double column
            }
        ],
    ]


def more_pages() -> list[list[dict[str, Any]]]:
    """The odd pages again with other ids, then a page with a field never seen before."""
    pages = odd_documents()
    for round_ in (2, 3):
        for page in odd_documents():
            pages.append([{**doc, "requestId": f"{doc['requestId']}-{round_}"} for doc in page])
    pages.append(
        [
            {
                "requestId": "late",
                "modifiedAt": "2025-02-01T00:00:00Z",
                "dueDate": "2025-03-01",  # a date (the spec's `format: date`): midnight UTC
                "approvedAt": "2025-02-01T10:00:00",  # a new time field
                "lineItems": [{"amount": 3.25, "tracking": [{"categoryName": "Region", "optionName": "South"}]}],
                "tags": [],
            }
        ]
    )
    return pages


def load(folder: Path, arrow: bool, pages: list[list[dict[str, Any]]]) -> str:
    database = str(folder / ("arrow.duckdb" if arrow else "rows.duckdb"))
    pipeline = dlt.pipeline(
        f"arrow_{arrow}",
        destination=dlt.destinations.duckdb(database),
        dataset_name="approvalmax",
        pipelines_dir=str(folder / f"pipelines_{arrow}"),
    )
    resource = documents_resource(
        PagesClient(pages), ["c1", "c2"], BILLS, ExtractOptions(arrow=arrow, arrow_min_page_bytes=0)
    )  # type: ignore[arg-type]
    pipeline.run(resource, loader_file_format="parquet")
    return database


@pytest.mark.parametrize("runs", [1, 2])
def test_odd_documents_load_as_dlt_would_load_them(tmp_path: Path, runs: int) -> None:
    for _ in range(runs):  # the second run merges into what the first loaded
        arrow, rows = load(tmp_path, True, more_pages()), load(tmp_path, False, more_pages())
    assert differences(arrow, rows) == []


def test_pages_after_the_first_are_read_by_arrow() -> None:
    pages = more_pages()
    schema = PageSchema()
    assert schema.explicit is None  # nothing learned: the first pages go the json way
    for page in pages[:-1]:  # the last page's new fields stay unknown
        schema.learn(page)
    assert schema.explicit is not None
    again = [parse_page(body_of(page), schema.explicit) for page in pages]
    # The three pages where `total` is a number and text at once stay with json.
    assert sum(page is not None for page in again) == len(again) - 3 == 4
    late = again[-1]
    assert isinstance(late, ArrowPage)
    # Arrow guessed a timestamp for the new `approvedAt`, losing its text: the page is refused whole.
    batch = ArrowDocuments("bills", {}, load_id="1")
    assert batch.add_page(late, "c1", Counter()) is False and list(batch.flush()) == []
    assert parse_page(b'{"payload": [{"a": 1}', schema.explicit) is None  # truncated: json judges it


def test_differences_are_found(tmp_path: Path) -> None:
    changed = odd_documents()
    changed[0][0]["lineItems"].pop()
    arrow, rows = load(tmp_path, True, odd_documents()), load(tmp_path, False, changed)
    assert differences(arrow, rows) != []


def test_rows_counted_per_table_and_parents_come_first() -> None:
    batch = ArrowDocuments("bills", {"bills": {"total": "double"}}, load_id="1")
    counts: Counter[str] = Counter()
    for page in odd_documents():
        for doc in page:
            batch.add(doc, "c1", counts)
    assert counts["bills"] == 3
    assert counts["bills__line_items"] == 2
    assert counts["bills__line_items__tracking"] == 1
    assert counts["bills__tags"] == 2
    tables = dict(batch.flush())
    names = list(tables)
    assert names.index("bills") < names.index("bills__line_items") < names.index("bills__line_items__tracking")
    assert batch.parent_of("bills__line_items__tracking") == "bills__line_items"
    assert tables["bills"].column("total").to_pylist() == [10.0, 12.5, None]
    assert tables["bills"].column("total__v_text").to_pylist() == [None, None, "not a number"]
    assert "never_set" not in tables["bills"].column_names
    assert batch.documents == 0 and list(batch.flush()) == []


def test_row_ids_are_unique_within_and_across_builders() -> None:
    first, second = RowIds(), RowIds()
    drawn = [next(first) for _ in range(1000)] + [next(second) for _ in range(1000)]
    assert len(set(drawn)) == 2000 and {len(i) for i in drawn} == {20}


def test_row_ids_taken_at_once_are_the_ones_next_would_make() -> None:
    import itertools

    from approvalmax_pipeline.sources.approvalmax.arrow.tables import RowIds

    one_by_one, at_once = RowIds(), RowIds()
    at_once._prefix = one_by_one._prefix
    expected = [next(one_by_one) for _ in range(7)]
    assert [next(at_once), *at_once.take(5).to_pylist(), next(at_once)] == expected
    assert at_once.take(0).to_pylist() == []
    near_the_end = RowIds()
    near_the_end._count = itertools.count(0xFFFFFFFE)
    ids = near_the_end.take(3).to_pylist()
    assert ids[-1].endswith("100000000") and len(set(ids)) == 3  # longer, never repeated
