"""The Arrow DocumentSink: pages parsed by Arrow in the fetch threads, batched, handed to dlt as tables."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dlt

from ..hints import DOCUMENT_KEY, column_hints, declared_types, root_columns
from ..history import VersionLog
from ..pages import Page
from ..records import versions
from ..report import RunReport
from ..settings import DocumentType
from ..sink import Admission, Prepared
from .dlt_compat import allow_arrow_in_nested_tables
from .pages import ArrowPage, parse_page
from .schema import PageSchema
from .tables import ArrowDocuments, nested_hints, root_hints, with_hinted_nullability

# Documents per batch of Arrow tables: big enough to amortise dlt's per-item cost, small
# enough to keep memory flat (about 10 MB of rows).
ARROW_BATCH_DOCUMENTS = 2000
# Arrow's JSON reader costs about 0.5 ms a call whatever the size, json 0.05 ms for a page of three
# documents: below this many bytes (about six documents) a page goes the json way. Quiet runs are
# mostly such pages, and 200 companies' worth of them cost half the requests' time in Arrow calls.
ARROW_MIN_PAGE_BYTES = 16_384

allow_arrow_in_nested_tables()


@dataclass(frozen=True)
class JsonDocuments:
    """A page json parsed: Arrow refused it (or knew no schema yet), so its fields teach the schema,
    or it was too small to be worth Arrow's call, which teaches nothing new."""

    documents: list[dict[str, Any]]
    teaches: bool


Parsed = ArrowPage | JsonDocuments


class ArrowSink:
    """Pages Arrow reads exactly as json would become struct arrays unnested with Arrow compute;
    the others (a new field, mixed types) go through the Python builder and teach the schema,
    so the next such page is read by Arrow."""

    def __init__(
        self,
        document_type: DocumentType,
        report: RunReport,
        min_page_bytes: int = ARROW_MIN_PAGE_BYTES,
        versions: VersionLog | None = None,
    ) -> None:
        self._type = document_type
        self._min_page_bytes = min_page_bytes
        self._report = report
        self._schema = PageSchema()
        root = document_type.resource
        tables = dlt.current.source_schema().tables
        existing = {name: t["columns"] for name, t in tables.items() if name == root or name.startswith(root + "__")}
        load_id = dlt.current.load_package_state()["load_id"]
        self._batch = ArrowDocuments(root, declared_types(document_type), existing, load_id)
        self._versions = versions or VersionLog.off()

    def prepare(self, page: Page) -> Prepared[Parsed]:
        """In a fetch thread: the page read by Arrow when it can be, else json parsed."""
        if page.parsed is not None:
            return Prepared(page.requested_at, JsonDocuments(page.documents(), teaches=True))
        options = self._schema.explicit  # replaced when the schema learns, never changed in place
        if options is not None and len(page.body) < self._min_page_bytes:
            return Prepared(page.requested_at, JsonDocuments(page.documents(), teaches=False))
        parsed = parse_page(page.body, options) if options is not None else None
        if parsed is None:
            # no schema yet, or a field it does not know: teach it this page, then try Arrow again
            documents = page.documents()
            parsed = parse_page(page.body, self._schema.learn(documents)) if documents else None
            if parsed is None:
                return Prepared(page.requested_at, JsonDocuments(documents, teaches=False))
        return Prepared(page.requested_at, parsed)

    def prepare_documents(self, documents: Sequence[dict[str, Any]], requested_at: datetime) -> Prepared[Parsed]:
        return Prepared(requested_at, JsonDocuments(list(documents), teaches=True))

    def add(self, company_id: str, page: Prepared[Parsed], admission: Admission) -> None:
        content, counts = page.content, self._report.counter(company_id)
        if isinstance(content, ArrowPage):
            times = content.modified_times()
            keep = admission.observe(zip(content.request_ids(), times, strict=True), page.requested_at)
            admitted = content.admitted(keep)
            if self._batch.add_page(admitted, company_id, counts):
                kept_times = [time for time, kept in zip(times, keep, strict=True) if kept]
                self._versions.add_arrow(company_id, admitted.documents, kept_times, page.requested_at)
                self._report.documents += len(admitted)
                return
            documents, teaches = content.json_documents(), True  # a shape only the Python builder handles
        else:
            documents, teaches = content.documents, content.teaches
            keep = admission.observe(versions(documents), page.requested_at)
        loaded = [document for document, kept in zip(documents, keep, strict=True) if kept]
        for document in loaded:
            self._batch.add(document, company_id, counts)
        self._report.documents += len(loaded)
        self._versions.add_documents(company_id, loaded, page.requested_at)
        if documents and teaches:
            self._schema.learn(documents)

    def flush(self, final: bool = False) -> Iterator[Any]:
        """The batch's tables, each with its own hints, so dlt merges them as nested tables."""
        if not final and self._batch.documents < ARROW_BATCH_DOCUMENTS:
            return
        declared = declared_types(self._type)
        for name, arrow in self._batch.flush():
            parent = self._batch.parent_of(name)
            if parent is None:
                columns = {**root_columns(self._type), **root_hints()}
                hints = dlt.mark.make_hints(
                    table_name=name, primary_key=DOCUMENT_KEY, write_disposition="merge", columns=columns
                )
            else:
                columns = {**column_hints(declared.get(name, {})), **nested_hints()}
                hints = dlt.mark.make_hints(
                    table_name=name,
                    parent_table_name=parent,
                    primary_key=[],
                    write_disposition="merge",
                    columns=columns,
                )
            key = DOCUMENT_KEY if parent is None else ()
            arrow = with_hinted_nullability(arrow, columns, key)
            yield dlt.mark.with_hints(arrow, hints, create_table_variant=True)
        yield from self._versions.flush()
