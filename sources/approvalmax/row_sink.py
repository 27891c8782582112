"""The row DocumentSink: documents as rows for dlt's own normaliser (`arrow_tables = false`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from .history import VersionLog
from .pages import Page
from .records import prepare_row, versions
from .report import RunReport
from .settings import DocumentType
from .sink import Admission, Prepared


class RowSink:
    """Slower than the Arrow sink, and the reference it is tested against."""

    def __init__(self, document_type: DocumentType, report: RunReport, versions: VersionLog | None = None) -> None:
        self._table = document_type.resource
        self._report = report
        self._ready: list[list[dict[str, Any]]] = []
        self._versions = versions or VersionLog.off()

    def prepare(self, page: Page) -> Prepared[list[dict[str, Any]]]:
        return Prepared(page.requested_at, page.documents())

    def prepare_documents(
        self, documents: Sequence[dict[str, Any]], requested_at: datetime
    ) -> Prepared[list[dict[str, Any]]]:
        return Prepared(requested_at, list(documents))

    def add(self, company_id: str, page: Prepared[list[dict[str, Any]]], admission: Admission) -> None:
        documents = page.content
        keep = admission.observe(versions(documents), page.requested_at)
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
