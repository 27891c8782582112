"""The one place the Arrow-or-rows choice is made (the interface is in `sink.py`)."""

from __future__ import annotations

from .arrow import ArrowSink
from .arrow.sink import ARROW_MIN_PAGE_BYTES
from .history import VersionLog
from .report import RunReport
from .row_sink import RowSink
from .settings import DocumentType
from .sink import DocumentSink


def open_sink(
    document_type: DocumentType,
    arrow: bool,
    report: RunReport,
    arrow_min_page_bytes: int | None = None,
    history: bool = True,
) -> DocumentSink:
    """A sink for one resource; call it on dlt's extract thread."""
    versions = VersionLog(document_type, report) if history else None
    if not arrow:
        return RowSink(document_type, report, versions)
    min_bytes = ARROW_MIN_PAGE_BYTES if arrow_min_page_bytes is None else arrow_min_page_bytes
    return ArrowSink(document_type, report, min_bytes, versions)
