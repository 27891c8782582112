"""What a page of documents becomes on its way to dlt: one DocumentSink interface, two sinks.

A page goes (1) from the client as raw bytes with its envelope, (2) through `prepare` in its
fetch thread (parsed by Arrow or by json), (3) through `add` on dlt's extract thread, where the
company's cursor says which documents to keep and they join the current batch, and (4) out of
`flush` to dlt as Arrow tables or rows, which dlt merges into the warehouse. `open_sink` makes
the Arrow-or-rows choice once per resource.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from .company_cursor import CompanyCursor
from .history import VersionLog
from .pages import Page
from .records import prepare_row, versions
from .report import RunReport
from .settings import DocumentType

T = TypeVar("T")


@dataclass(frozen=True)
class Prepared(Generic[T]):
    """A page parsed in its fetch thread, and when its request went out."""

    requested_at: datetime
    content: T


class DocumentSink(Protocol):
    def prepare(self, page: Page) -> Prepared[Any]:
        """Parse a page; runs in the fetch threads, so it touches no shared state but what it only reads."""
        ...

    def add(self, company_id: str, page: Prepared[Any], cursor: CompanyCursor) -> None:
        """Keep the documents the cursor wants; on the extract thread."""
        ...

    def flush(self, final: bool = False) -> Iterator[Any]:
        """Items for dlt: what is ready (everything when `final`)."""
        ...


class RowSink:
    """Rows for dlt's own normaliser (`arrow_tables = false`): slower, and the reference the
    Arrow sink is tested against."""

    def __init__(self, document_type: DocumentType, report: RunReport, versions: VersionLog | None = None) -> None:
        self._table = document_type.resource
        self._report = report
        self._ready: list[list[dict[str, Any]]] = []
        self._versions = versions or VersionLog.off()

    def prepare(self, page: Page) -> Prepared[list[dict[str, Any]]]:
        return Prepared(page.requested_at, page.documents())

    def add(self, company_id: str, page: Prepared[list[dict[str, Any]]], cursor: CompanyCursor) -> None:
        documents = page.content
        keep = cursor.observe(versions(documents), page.requested_at)
        loaded = [document for document, kept in zip(documents, keep, strict=True) if kept]
        self._versions.add_documents(company_id, loaded, page.requested_at)
        rows = [prepare_row(document, company_id) for document in loaded]
        if rows:
            self._report.count(company_id, self._table, rows)
            self._ready.append(rows)

    def flush(self, final: bool = False) -> Iterator[Any]:
        ready, self._ready = self._ready, []
        yield from ready
        yield from self._versions.flush()


def open_sink(
    document_type: DocumentType,
    arrow: bool,
    report: RunReport,
    arrow_min_page_bytes: int | None = None,
    history: bool = True,
) -> DocumentSink:
    """The one place the Arrow-or-rows choice is made; call it on dlt's extract thread."""
    versions = VersionLog(document_type, report) if history else None
    if not arrow:
        return RowSink(document_type, report, versions)
    from .arrow import ArrowSink
    from .arrow.sink import ARROW_MIN_PAGE_BYTES

    return ArrowSink(
        document_type, report, ARROW_MIN_PAGE_BYTES if arrow_min_page_bytes is None else arrow_min_page_bytes, versions
    )
