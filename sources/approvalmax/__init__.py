"""dlt source for ApprovalMax: companies, user profiles and every document type, incremental per company."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
from dlt.common.schema.typing import TColumnSchema
from dlt.extract.hints import TResourceNestedHints
from dlt.extract.resource import DltResource

from ..oauth_tokens import TokenError
from .client import ApprovalMaxClient
from .cursors import Window, dump_cursor, load_cursor, next_cursor, request_floor
from .errors import ApiUnavailable, ApprovalMaxError
from .fan_in import Done, Failed, Item, fan_in
from .records import count_rows, modified_at, prepare_row
from .settings import (
    COMPANIES_RESOURCE,
    DOCUMENT_TYPES,
    MODIFIED_FILTER,
    USER_PROFILES_RESOURCE,
    DocumentType,
)
from .timestamps import format_timestamp

# Errors that end the whole run: no other company can do better.
FATAL_ERRORS: tuple[type[BaseException], ...] = (TokenError, ApiUnavailable)

DOCUMENT_KEY = ("company_id", "request_id")


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
    documents: int = 0  # root rows so far, for a progress display

    def count(self, company_id: str, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        count_rows(table, rows, self.rows.setdefault(company_id, Counter()))
        self.documents += len(rows)


@dataclass(frozen=True)
class ExtractOptions:
    """How this run reads: the lookback of incremental runs, or a fixed backfill window."""

    lookback: timedelta = timedelta(minutes=10)
    window: Window | None = None
    report: RunReport = field(default_factory=RunReport)
    # Raise on a company's failure instead of recording it (schedulers show a failed task).
    strict: bool = False
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


@dlt.source(name="approvalmax")
def approvalmax_source(
    client: ApprovalMaxClient, companies: Sequence[Mapping[str, Any]], options: ExtractOptions
) -> Iterator[DltResource]:
    """Every resource for the given companies (as `/companies` listed them)."""
    company_ids = [str(company["companyId"]) for company in companies]
    yield companies_resource(companies, options.report)
    yield user_profiles_resource(client, company_ids, options.report, options.strict)
    for document_type in DOCUMENT_TYPES:
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

    def extract() -> Iterator[list[dict[str, Any]]]:
        for event in fan_in({cid: producer(cid) for cid in company_ids}, client.concurrency):
            if isinstance(event, Item):
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

    def extract() -> Iterator[list[dict[str, Any]]]:
        window = options.window
        cursors: dict[str, str] | None = None
        if window is None:
            cursors = dlt.current.resource_state().setdefault("cursors", {})
        started: dict[str, datetime] = {}
        newest: dict[str, datetime] = {}

        def producer(company_id: str) -> Callable[[], Iterator[list[dict[str, Any]]]]:
            def fetch() -> Iterator[list[dict[str, Any]]]:
                if window is not None:
                    floor = window.since
                else:
                    assert cursors is not None
                    floor = request_floor(load_cursor(cursors.get(company_id)), options.lookback)
                params = {MODIFIED_FILTER: format_timestamp(floor)} if floor else {}
                started[company_id] = options.clock()
                yield from client.documents(company_id, document_type.path, params)

            return fetch

        for event in fan_in({cid: producer(cid) for cid in company_ids}, client.concurrency):
            if isinstance(event, Item):
                rows = []
                for raw in event.value:
                    row = prepare_row(raw, event.key)
                    modified = modified_at(row)
                    if window is not None and not window.admits(modified):
                        continue
                    if modified is not None and (event.key not in newest or modified > newest[event.key]):
                        newest[event.key] = modified
                    rows.append(row)
                if rows:
                    options.report.count(event.key, table, rows)
                    yield rows
            elif isinstance(event, Done):
                if cursors is not None:
                    moved = next_cursor(load_cursor(cursors.get(event.key)), newest.get(event.key), started[event.key])
                    if moved is not None:
                        cursors[event.key] = dump_cursor(moved)
            else:
                _record_failure(options.report, event, table, options.strict)

    columns: dict[str, TColumnSchema] = {name: {"data_type": kind} for name, kind in document_type.columns.items()}
    # Within one load the newest version of a document wins.
    columns["modified_at"]["dedup_sort"] = "desc"
    nested_hints: dict[str | Sequence[str], TResourceNestedHints] = {
        path: dlt.mark.make_nested_hints(columns={name: {"data_type": kind} for name, kind in types.items()})
        for path, types in document_type.children.items()
    }
    return dlt.resource(
        extract,
        name=table,
        write_disposition="merge",
        primary_key=DOCUMENT_KEY,
        columns=columns,
        nested_hints=nested_hints,
    )


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
