"""The dlt sources: a run's (companies, user profiles and every document type, incremental per
company) and the webhook listener's (documents already read by id). Both hand documents to the
same sinks, with the same table hints; they differ only in how they choose the documents."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import dlt
from dlt.extract.hints import TResourceNestedHints
from dlt.extract.resource import DltResource

from ..oauth_tokens import TokenError
from .client import ApprovalMaxClient
from .companies import Company
from .company_cursor import CompanyCursor, ResourceCursors
from .content_digest import digest
from .cursors import dump_cursor, load_cursor
from .errors import ApiError, ApiUnavailable, ApprovalMaxError
from .extract_options import ExtractOptions
from .fan_in import Done, Failed, Item, fan_in
from .hints import DOCUMENT_KEY, column_hints, root_columns
from .history import history_hints
from .positions import LazyPositions, position_hints, rows_as_tables, running_pipeline
from .records import prepare_row
from .report import CompanyFailure, RunReport
from .settings import COMPANIES_RESOURCE, MODIFIED_FILTER, USER_PROFILES_RESOURCE, DocumentType
from .sink import EVERY_DOCUMENT, Prepared
from .sinks import open_sink
from .state_layout import (
    LEGACY_KEYS,
    SOURCE_NAME,
    Positions,
    ResourceState,
    Snapshot,
    changed_rows,
    has_legacy,
    snapshot,
)
from .sweeps import SweepPolicy
from .timestamps import format_timestamp

# Errors that end the whole run: no other company can do better.
FATAL_ERRORS: tuple[type[BaseException], ...] = (TokenError, ApiUnavailable)


@dlt.source(name=SOURCE_NAME, section=SOURCE_NAME)
def approvalmax_dlt_source(
    client: ApprovalMaxClient, companies: Sequence[Company], options: ExtractOptions
) -> Iterator[DltResource]:
    """Every resource for the given companies: each company's documents modified since its cursor."""
    company_ids = [company.id for company in companies]
    # the CLI reads positions as it restores the pipeline; a library user's run reads them on first use
    positions = LazyPositions(options.positions).get
    yield companies_resource(companies, options, positions)
    yield user_profiles_resource(client, company_ids, options, positions)
    for document_type in options.document_types:
        yield documents_resource(client, company_ids, document_type, options, positions)


def companies_resource(
    companies: Sequence[Company], options: ExtractOptions, positions: Callable[[], Positions]
) -> DltResource:
    """The companies whose record changed since it was last loaded (LoadedDigests)."""

    def extract() -> Iterator[Any]:
        run = RunPositions(COMPANIES_RESOURCE, options, positions)
        digests = LoadedDigests(run.state, sweep_policy(options))
        rows = []
        for company in companies:
            if digests.should_load(company.id, company.record):
                rows.append(prepare_row(company.record, company.id))
                options.report.count(company.id, COMPANIES_RESOURCE, rows[-1:])
        if rows:
            yield rows
        yield from run.moved()

    resource = dlt.resource(extract, name=COMPANIES_RESOURCE, write_disposition="merge", primary_key="company_id")
    return resource.apply_hints(create_table_variant=True, **position_hints())


def user_profiles_resource(
    client: ApprovalMaxClient, company_ids: Sequence[str], options: ExtractOptions, positions: Callable[[], Positions]
) -> DltResource:
    """Each company's user profiles when its list changed since it was last loaded (LoadedDigests)."""

    def producer(company_id: str) -> Callable[[], Iterator[list[dict[str, Any]]]]:
        return lambda: iter([client.user_profiles(company_id)])

    def extract() -> Iterator[Any]:
        run = RunPositions(USER_PROFILES_RESOURCE, options, positions)
        digests = LoadedDigests(run.state, sweep_policy(options))
        for event in fan_in({cid: producer(cid) for cid in company_ids}, client.in_flight(len(company_ids))):
            if event is None:
                yield None  # nothing ready: dlt turns to the other resources meanwhile
            elif isinstance(event, Item):
                if digests.should_load(event.key, event.value):
                    rows = [prepare_row(raw, event.key) for raw in event.value]
                    options.report.count(event.key, USER_PROFILES_RESOURCE, rows)
                    yield rows
            elif isinstance(event, Failed):
                record_failure(options.report, event, USER_PROFILES_RESOURCE, options.strict)
        yield from run.moved()

    resource = dlt.resource(
        extract, name=USER_PROFILES_RESOURCE, write_disposition="merge", primary_key=("company_id", "user_id")
    )
    return resource.apply_hints(create_table_variant=True, **position_hints())


class RunPositions:
    """One resource's positions (state_layout.py) as this run reads them when it starts (none in a
    backfill window, which reads and moves no position), and at its end the `_approvalmax_cursors`
    rows of the companies whose position moved, for the resource to yield into its load package."""

    def __init__(self, resource: str, options: ExtractOptions, read: Callable[[], Positions]) -> None:
        self.resource = resource
        self.state = read().resource_state(resource) if options.window is None else None
        self._before = snapshot(self.state) if self.state is not None else {}

    def moved(self) -> Iterator[Any]:
        if self.state is None:
            return iter(())
        return rows_as_tables(moved_positions(self.resource, self._before, self.state))


def sweep_policy(options: ExtractOptions) -> SweepPolicy:
    """This run's sweeps; called inside dlt's extract, whose load id names each sweep."""
    load_id = dlt.current.load_package_state()["load_id"]
    return SweepPolicy(options.clock.now(), load_id, options.reconcile_every, options.reconcile)


class LoadedDigests:
    """A whole-list resource's positions: per company, the digest of the answer last loaded
    (content_digest.py) and when. A company's rows load when its answer's digest differs, or when
    its sweep is due (`reconcile_every`, `--reconcile`: rows another pipeline wrote over, or someone
    deleted, come back within a day); the new position goes in the same load package
    (RunPositions), so it counts only once they are in. A backfill (`state` None) loads every
    company's rows and records nothing."""

    def __init__(self, state: dict[str, Any] | None, sweep: SweepPolicy) -> None:
        self._positions = ResourceState(state) if state is not None else None
        self._sweep = sweep

    def should_load(self, company_id: str, answer: Any) -> bool:
        """Whether the company's rows load now; if so, their digest and time become its position."""
        if self._positions is None:
            return True
        new = digest(answer)
        last = load_cursor(self._positions.last_sweep_at(company_id))
        if self._positions.cursor(company_id) == new and not self._sweep.due(last):
            return False
        self._positions.set_cursor(company_id, new)
        self._positions.record_sweep(company_id, dump_cursor(self._sweep.now), self._sweep.load_id)
        return True


def documents_resource(
    client: ApprovalMaxClient,
    company_ids: Sequence[str],
    document_type: DocumentType,
    options: ExtractOptions,
    positions: Callable[[], Positions] | None = None,
) -> DltResource:
    """One document type for every company; each company's cursor moves only once all its pages are
    in, and reaches the warehouse as a `_approvalmax_cursors` row in the documents' load package."""

    read = positions or LazyPositions(options.positions).get

    def extract() -> Iterator[Any]:
        run = RunPositions(document_type.resource, options, read)
        cursors = open_cursors(client, document_type, options, run.state)
        sink = open_sink(
            document_type, options.arrow, options.report, options.arrow_min_page_bytes, history=options.history
        )

        def fetch(company_id: str, params: dict[str, str]) -> Callable[[], Iterator[Prepared[Any]]]:
            return lambda: map(sink.prepare, client.documents(company_id, document_type.path, params))

        floors = {cid: cursors[cid].floor for cid in company_ids}  # read here: fetch threads touch no state
        producers = {cid: fetch(cid, modified_filter(floor)) for cid, floor in floors.items()}
        for event in fan_in(producers, client.in_flight(len(producers))):
            if event is None:
                yield None  # nothing ready: dlt turns to the other resources meanwhile
            elif isinstance(event, Item):
                sink.add(event.key, event.value, cursors[event.key])
                yield from sink.flush()
            elif isinstance(event, Done):
                cursors[event.key].commit()
                if cursors[event.key].sweeping:
                    options.report.swept.append((event.key, document_type.resource))
            else:
                company_failed(cursors[event.key], event, document_type.resource, options)
        yield from sink.flush(final=True)
        yield from run.moved()

    resource = dlt.resource(extract, name=document_type.resource)
    # a table variant starts from a copy of the resource's hints as they are then: before the documents'
    resource.apply_hints(create_table_variant=True, **position_hints())
    return with_document_hints(resource, document_type, options)


def moved_positions(resource: str, before: Mapping[str, Snapshot], state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `_approvalmax_cursors` rows of the companies whose position moved; the first run on a
    warehouse of the previous version moves every position out of dlt state into the table."""
    legacy = dlt.current.resource_state()
    migrating = has_legacy(legacy)
    for key in LEGACY_KEYS:
        legacy.pop(key, None)
    return changed_rows(running_pipeline().pipeline_name, resource, before, state, every=migrating)


@dlt.source(name=SOURCE_NAME, section=SOURCE_NAME)
def fetched_documents_source(
    documents: Mapping[str, Mapping[str, Sequence[dict[str, Any]]]], options: ExtractOptions
) -> Iterator[DltResource]:
    """Documents already read by id (the webhook listener's): resource -> company -> documents,
    through the same sinks, tables and hints as a run's; no cursor is read or moved."""
    fetched_at = options.clock.now()
    for document_type in options.document_types:
        if document_type.resource in documents:
            yield fetched_resource(document_type, documents[document_type.resource], fetched_at, options)


def fetched_resource(
    document_type: DocumentType,
    documents: Mapping[str, Sequence[dict[str, Any]]],
    fetched_at: datetime,
    options: ExtractOptions,
) -> DltResource:
    def extract() -> Iterator[Any]:
        sink = open_sink(
            document_type, options.arrow, options.report, options.arrow_min_page_bytes, history=options.history
        )
        for company_id, found in documents.items():
            sink.add(company_id, sink.prepare_documents(found, fetched_at), EVERY_DOCUMENT)
        yield from sink.flush(final=True)

    return with_document_hints(dlt.resource(extract, name=document_type.resource), document_type, options)


def with_document_hints(resource: DltResource, document_type: DocumentType, options: ExtractOptions) -> DltResource:
    """A document table's hints, the same for a run's resource and the listener's."""
    resource.apply_hints(write_disposition="merge", primary_key=DOCUMENT_KEY)
    if options.history:
        # request_versions first: a table variant starts from a copy of the resource's hints as they are then
        resource.apply_hints(create_table_variant=True, **history_hints())
    if options.arrow:
        # Hints go with each Arrow table (a table variant each); the resource only says how to write.
        return resource
    nested: dict[str | Sequence[str], TResourceNestedHints] = {
        path: dlt.mark.make_nested_hints(columns=column_hints(types)) for path, types in document_type.children.items()
    }
    return resource.apply_hints(columns=root_columns(document_type), nested_hints=nested)


def open_cursors(
    client: ApprovalMaxClient, document_type: DocumentType, options: ExtractOptions, state: dict[str, Any] | None
) -> ResourceCursors:
    """Cursors over the resource's positions (state_layout.py); a backfill (`state` None) reads and moves none."""

    def older_came_back(floor: datetime) -> None:
        if MODIFIED_FILTER not in client.refused_filters:
            options.report.warn_once(
                f"ignored:{MODIFIED_FILTER}",
                f"the API ignored the filter {MODIFIED_FILTER}: {document_type.resource} came back with documents "
                f"modified before {format_timestamp(floor)}; they are skipped here, so the load stays exact, but "
                "each run reads whole lists (`approvalmax doctor` checks the filter)",
            )

    sweep = sweep_policy(options) if state is not None else None
    return ResourceCursors(state, options.lookback, options.window, older_came_back, sweep)


def modified_filter(floor: datetime | None) -> dict[str, str]:
    return {MODIFIED_FILTER: format_timestamp(floor)} if floor else {}


def company_failed(cursor: CompanyCursor, event: Failed, resource: str, options: ExtractOptions) -> None:
    """A document list that answers 404 means the company does not have that type (a QuickBooks
    organisation has no Xero bills), which is no failure; anything else goes by the failure policy."""
    cursor.abandon()
    if isinstance(event.error, ApiError) and event.error.status == 404:
        if cursor.not_applicable():
            options.report.not_applicable.append(CompanyFailure(event.key, resource, str(event.error)))
        return
    record_failure(options.report, event, resource, options.strict)


def record_failure(report: RunReport, event: Failed, resource: str, strict: bool) -> None:
    error = event.error
    if strict or isinstance(error, FATAL_ERRORS) or not isinstance(error, ApprovalMaxError):
        raise error
    report.failures.append(CompanyFailure(event.key, resource, str(error)))
