"""dlt source for ApprovalMax: companies, user profiles and every document type, incremental per company."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
from dlt.common.data_types.typing import TDataType
from dlt.common.schema.typing import TColumnSchema
from dlt.extract.hints import TResourceNestedHints
from dlt.extract.resource import DltResource

from ..oauth_tokens import TokenError
from .arrow_pages import ArrowPage
from .arrow_tables import ArrowDocuments, column_hints, nested_hints, root_hints
from .client import ApprovalMaxClient
from .cursors import Window, dump_cursor, load_cursor, next_cursor, request_floor
from .dlt_compat import allow_arrow_in_nested_tables
from .errors import ApiError, ApiUnavailable, ApprovalMaxError
from .fan_in import Done, Failed, Item, fan_in
from .page_schema import PageSchema
from .records import count_rows, modified_at, prepare_row
from .settings import (
    COMPANIES_RESOURCE,
    DOCUMENT_TYPES,
    MODIFIED_FILTER,
    USER_PROFILES_RESOURCE,
    DocumentType,
)
from .timestamps import format_timestamp
from .versions import LoadedVersions

log = logging.getLogger(__name__)

# Errors that end the whole run: no other company can do better.
FATAL_ERRORS: tuple[type[BaseException], ...] = (TokenError, ApiUnavailable)

DOCUMENT_KEY = ("company_id", "request_id")
KEY_TYPES: dict[str, TDataType] = {"company_id": "text", "request_id": "text"}
# Documents per batch of Arrow tables: big enough to amortise dlt's per-item cost, small
# enough to keep memory flat (about 10 MB of rows).
ARROW_BATCH_DOCUMENTS = 2000

allow_arrow_in_nested_tables()


@dataclass(frozen=True)
class CompanyFailure:
    """One company's resource that could not be loaded this run."""

    company_id: str
    resource: str
    message: str


@dataclass
class RunReport:
    """Filled during extraction (on dlt's thread) for the run summary."""

    rows: dict[str, Counter[str]] = field(default_factory=dict)  # company -> table -> rows
    failures: list[CompanyFailure] = field(default_factory=list)
    # Document types a company does not have (404), reported the first run that sees them.
    not_applicable: list[CompanyFailure] = field(default_factory=list)
    documents: int = 0  # root rows so far, for a progress display
    warned: set[str] = field(default_factory=set)

    def warn_once(self, key: str, message: str) -> None:
        """One warning per run for what every page would otherwise repeat."""
        if key not in self.warned:
            self.warned.add(key)
            log.warning("%s", message)

    def count(self, company_id: str, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        count_rows(table, rows, self.rows.setdefault(company_id, Counter()))
        self.documents += len(rows)

    def counter(self, company_id: str) -> Counter[str]:
        return self.rows.setdefault(company_id, Counter())


@dataclass(frozen=True)
class ExtractOptions:
    """How this run reads: the lookback of incremental runs, or a fixed backfill window."""

    lookback: timedelta = timedelta(minutes=10)
    window: Window | None = None
    report: RunReport = field(default_factory=RunReport)
    # Raise on a company's failure instead of recording it (schedulers show a failed task).
    strict: bool = False
    # Hand dlt Arrow tables (fast); False uses dlt's row-by-row normaliser for the same tables.
    arrow: bool = True
    # The document types to read: the built-in table and any configured ones (config.document_types).
    document_types: tuple[DocumentType, ...] = DOCUMENT_TYPES
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


@dlt.source(name="approvalmax")
def approvalmax_source(
    client: ApprovalMaxClient, companies: Sequence[Mapping[str, Any]], options: ExtractOptions
) -> Iterator[DltResource]:
    """Every resource for the given companies (as `/companies` listed them)."""
    company_ids = [str(company["companyId"]) for company in companies]
    yield companies_resource(companies, options.report)
    yield user_profiles_resource(client, company_ids, options.report, options.strict)
    for document_type in options.document_types:
        yield documents_resource(client, company_ids, document_type, options)


def companies_resource(companies: Sequence[Mapping[str, Any]], report: RunReport) -> DltResource:
    def extract() -> Iterator[list[dict[str, Any]]]:
        rows = [prepare_row(company, str(company["companyId"])) for company in companies]
        for row in rows:
            report.count(row["companyId"], COMPANIES_RESOURCE, [row])
        yield rows

    return dlt.resource(extract, name=COMPANIES_RESOURCE, write_disposition="merge", primary_key="company_id")


def user_profiles_resource(
    client: ApprovalMaxClient, company_ids: Sequence[str], report: RunReport, strict: bool = False
) -> DltResource:
    def producer(company_id: str) -> Callable[[], Iterator[list[dict[str, Any]]]]:
        return lambda: iter([client.user_profiles(company_id)])

    def extract() -> Iterator[list[dict[str, Any]] | None]:
        for event in fan_in({cid: producer(cid) for cid in company_ids}, client.concurrency):
            if event is None:
                yield None  # nothing ready: dlt turns to the other resources meanwhile
            elif isinstance(event, Item):
                rows = [prepare_row(raw, event.key) for raw in event.value]
                report.count(event.key, USER_PROFILES_RESOURCE, rows)
                yield rows
            elif isinstance(event, Failed):
                _record_failure(report, event, USER_PROFILES_RESOURCE, strict)

    return dlt.resource(
        extract,
        name=USER_PROFILES_RESOURCE,
        write_disposition="merge",
        primary_key=("company_id", "user_id"),
    )


def documents_resource(
    client: ApprovalMaxClient,
    company_ids: Sequence[str],
    document_type: DocumentType,
    options: ExtractOptions,
) -> DltResource:
    """One document type for every company; each company's cursor moves only once all its pages are in."""
    table = document_type.resource
    report = options.report

    def extract() -> Iterator[Any]:
        window = options.window
        cursors: dict[str, str] | None = None
        versions: LoadedVersions | None = None
        absent: list[str] = []  # companies whose list answered 404 (kept in state: reported once)
        if window is None:
            state = dlt.current.resource_state()
            cursors = state.setdefault("cursors", {})
            versions = LoadedVersions(state.setdefault("loaded_versions", {}))
            absent = state.setdefault("not_applicable", [])
        floors: dict[str, datetime | None] = {}
        started: dict[str, datetime] = {}
        newest: dict[str, datetime] = {}
        batch = _arrow_batch(document_type) if options.arrow else None
        page_schema = PageSchema() if options.arrow else None

        def producer(company_id: str) -> Callable[[], Iterator[list[dict[str, Any]] | ArrowPage]]:
            def fetch() -> Iterator[list[dict[str, Any]] | ArrowPage]:
                if window is not None:
                    floor = window.since
                else:
                    assert cursors is not None
                    floor = request_floor(load_cursor(cursors.get(company_id)), options.lookback)
                floors[company_id] = floor
                params = {MODIFIED_FILTER: format_timestamp(floor)} if floor else {}
                started[company_id] = options.clock()
                yield from client.documents(company_id, document_type.path, params, page_schema)

            return fetch

        def wanted(company_id: str, request_id: object, modified: datetime | None) -> bool:
            """Whether to load a document: at or after the floor (the API may not filter: see
            settings.MODIFIED_FILTER), inside the window, and not a version loaded before.
            Tracks the newest `modifiedAt` per company."""
            floor = floors.get(company_id)
            if floor is not None and modified is not None and modified < floor:
                if MODIFIED_FILTER not in client.refused_filters:
                    report.warn_once(
                        f"ignored:{MODIFIED_FILTER}",
                        f"the API ignored the filter {MODIFIED_FILTER}: {table} came back with documents "
                        f"modified before {format_timestamp(floor)}; they are skipped here, so the load stays "
                        "exact, but each run reads whole lists (`approvalmax doctor` checks the filter)",
                    )
                return False
            if window is not None and not window.admits(modified):
                return False
            if modified is not None and (company_id not in newest or modified > newest[company_id]):
                newest[company_id] = modified
            return versions is None or not versions.is_loaded(company_id, request_id, modified)

        for event in fan_in({cid: producer(cid) for cid in company_ids}, client.concurrency):
            if event is None:
                yield None  # nothing ready: dlt turns to the other resources meanwhile
            elif isinstance(event, Item):
                page = event.value
                counts = report.counter(event.key)
                if isinstance(page, ArrowPage):
                    assert batch is not None
                    versions_ = zip(page.request_ids(), page.modified_times(), strict=True)
                    keep = [wanted(event.key, request_id, modified) for request_id, modified in versions_]
                    admitted = page.admitted(keep)
                    if batch.add_page(admitted, event.key, counts):
                        report.documents += len(admitted)
                        page = []
                    else:  # a shape only the Python path handles
                        page = page.json_documents()
                rows = []
                for raw in page:
                    if not wanted(event.key, raw.get("requestId"), modified_at(raw)):
                        continue
                    if batch is None:
                        rows.append(prepare_row(raw, event.key))
                    else:
                        batch.add(raw, event.key, counts)
                        report.documents += 1
                if page and page_schema is not None:
                    page_schema.learn(page)
                if versions is not None and event.key in newest and event.key in started:
                    # The next floor is at least this: the cursor never moves back.
                    versions.trim(event.key, min(newest[event.key], started[event.key]) - options.lookback)
                if rows:
                    report.count(event.key, table, rows)
                    yield rows
                if batch is not None and batch.documents >= ARROW_BATCH_DOCUMENTS:
                    yield from _arrow_items(batch, document_type)
            elif isinstance(event, Done):
                if event.key in absent:
                    absent.remove(event.key)  # the type exists for this company now
                if cursors is not None and versions is not None:
                    moved = next_cursor(load_cursor(cursors.get(event.key)), newest.get(event.key), started[event.key])
                    if moved is not None:
                        cursors[event.key] = dump_cursor(moved)
                    versions.settle(event.key, request_floor(moved, options.lookback))
            else:
                if versions is not None:
                    versions.forget(event.key)
                if _not_applicable(event):
                    if event.key not in absent:
                        absent.append(event.key)
                        report.not_applicable.append(CompanyFailure(event.key, table, str(event.error)))
                    continue
                _record_failure(report, event, table, options.strict)
        if batch is not None:
            yield from _arrow_items(batch, document_type)

    if options.arrow:
        # Hints go with each Arrow table (a table variant each); the resource only says how to write.
        return dlt.resource(extract, name=table, write_disposition="merge", primary_key=DOCUMENT_KEY)
    nested: dict[str | Sequence[str], TResourceNestedHints] = {
        path: dlt.mark.make_nested_hints(columns=column_hints(types)) for path, types in document_type.children.items()
    }
    return dlt.resource(
        extract,
        name=table,
        write_disposition="merge",
        primary_key=DOCUMENT_KEY,
        columns=_root_columns(document_type),
        nested_hints=nested,
    )


def _root_columns(document_type: DocumentType) -> dict[str, TColumnSchema]:
    columns = dict(column_hints(document_type.columns))
    # Within one load the newest version of a document wins.
    columns["modified_at"] = {**columns["modified_at"], "dedup_sort": "desc"}
    return columns


def _child_table(document_type: DocumentType, path: Sequence[str]) -> str:
    return "__".join((document_type.resource, *path))


def _arrow_batch(document_type: DocumentType) -> ArrowDocuments:
    """A batch builder that knows the declared types and those the tables already have in dlt's schema."""
    root = document_type.resource
    declared = {root: {**KEY_TYPES, **document_type.columns}}
    for path, types in document_type.children.items():
        declared[_child_table(document_type, path)] = types
    tables = dlt.current.source_schema().tables
    existing = {name: t["columns"] for name, t in tables.items() if name == root or name.startswith(root + "__")}
    load_id = dlt.current.load_package_state()["load_id"]
    return ArrowDocuments(root, declared, existing, load_id)


def _arrow_items(batch: ArrowDocuments, document_type: DocumentType) -> Iterator[Any]:
    """The batch's Arrow tables, each with its table's hints: dlt merges them as nested tables."""
    declared = {_child_table(document_type, path): types for path, types in document_type.children.items()}
    for name, arrow in batch.flush():
        parent = batch.parent_of(name)
        if parent is None:
            hints = dlt.mark.make_hints(
                table_name=name,
                primary_key=DOCUMENT_KEY,
                write_disposition="merge",
                columns={**_root_columns(document_type), **root_hints()},
            )
        else:
            hints = dlt.mark.make_hints(
                table_name=name,
                parent_table_name=parent,
                primary_key=[],
                write_disposition="merge",
                columns={**column_hints(declared.get(name, {})), **nested_hints()},
            )
        yield dlt.mark.with_hints(arrow, hints, create_table_variant=True)


def _not_applicable(event: Failed) -> bool:
    """A document list that answers 404: the company does not have that type (a QuickBooks
    organisation has no Xero bills), which is no failure."""
    return isinstance(event.error, ApiError) and event.error.status == 404


def _record_failure(report: RunReport, event: Failed, resource: str, strict: bool) -> None:
    error = event.error
    if strict or isinstance(error, FATAL_ERRORS) or not isinstance(error, ApprovalMaxError):
        raise error
    report.failures.append(CompanyFailure(event.key, resource, str(error)))


__all__ = [
    "ApprovalMaxClient",
    "CompanyFailure",
    "ExtractOptions",
    "RunReport",
    "Window",
    "approvalmax_source",
]
