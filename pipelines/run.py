"""The run path: choose each company's documents since its cursor, and hand them to the load step."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dlt
from dlt.destinations.sql_client import SqlClientBase

from approvalmax_pipeline.pipelines.errors import EXIT_USAGE, exit_code, find_cause
from approvalmax_pipeline.pipelines.options import check_window, select_resources
from approvalmax_pipeline.pipelines.warehouse.deletions import Deletions, mark_deleted
from approvalmax_pipeline.pipelines.warehouse.factory import completed_target
from approvalmax_pipeline.pipelines.warehouse.faults import is_warehouse_fault
from approvalmax_pipeline.pipelines.warehouse.load_step import Chosen, HistoryLog, Loaded, load_step
from approvalmax_pipeline.pipelines.warehouse.phases import Phases
from approvalmax_pipeline.pipelines.warehouse.run_history import RunRecord, history_rows
from approvalmax_pipeline.pipelines.warehouse.target import Target
from approvalmax_pipeline.pipelines.warehouse.working_folder import restored_with, run_lock
from approvalmax_pipeline.sources.approvalmax.client import RequestStats
from approvalmax_pipeline.sources.approvalmax.companies import Company
from approvalmax_pipeline.sources.approvalmax.config import ApprovalMaxSettings, document_types
from approvalmax_pipeline.sources.approvalmax.connector import Connector
from approvalmax_pipeline.sources.approvalmax.cursors import Window
from approvalmax_pipeline.sources.approvalmax.errors import ConfigError
from approvalmax_pipeline.sources.approvalmax.positions import prune_superseded, read_positions
from approvalmax_pipeline.sources.approvalmax.report import RunReport
from approvalmax_pipeline.sources.approvalmax.settings import RESOURCE_NAMES, DocumentType
from approvalmax_pipeline.sources.approvalmax.state_layout import POSITIONS_TABLE, Positions
from approvalmax_pipeline.sources.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunRequest:
    """What the operator asked for; defaults are a full incremental run into DuckDB."""

    target: Target = field(default_factory=Target)
    companies: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    record_to: Path | None = None  # keep the API's responses, pseudonymised (sources/approvalmax/recording.py)
    strict: bool = False  # a company's failure fails the run (Airflow), instead of being reported
    reconcile: bool = False  # sweep every company now (sources/approvalmax/sweeps.py)


@dataclass
class RunMonitor:
    """Live numbers a progress display may read from another thread."""

    stats: RequestStats | None = None
    report: RunReport | None = None
    phase: str = "connecting"

    def set_phase(self, phase: str) -> None:
        self.phase = phase


@dataclass
class RunResult:
    companies: list[Company]
    report: RunReport
    table_rows: dict[str, int]
    requests: int
    retries: int
    throttled: int
    token_refreshes: int
    duration: float
    destination: str
    dataset: str
    pipeline: str
    backfill: bool = False
    views: tuple[str, ...] = field(default_factory=tuple)
    deletions: Deletions = field(default_factory=Deletions)
    sweep_requests: int = 0  # requests of the lists read whole this run
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase (warehouse/phases.py)

    @property
    def swept(self) -> list[tuple[str, str]]:
        return self.report.swept

    @property
    def failed(self) -> bool:
        return bool(self.report.failures)


def run_pipeline(
    settings: ApprovalMaxSettings, request: RunRequest, monitor: RunMonitor | None = None, clock: Clock = SYSTEM_CLOCK
) -> RunResult:
    """Everything `approvalmax run` does, without printing: choose each company's documents since
    its cursor (or in a window) and hand them to the load step."""
    monitor = monitor or RunMonitor()
    started = clock.monotonic()
    check_window(request.since, request.until)
    if request.reconcile and (request.since or request.until):
        raise ConfigError("--reconcile reads whole lists and cannot take --since/--until; run them apart")
    types = document_types(settings)
    resources = select_resources(request.resources, (*RESOURCE_NAMES[:2], *(doc.resource for doc in types)))
    target = completed_target(request.target, settings.token_store, settings.warehouse_retry_seconds)
    window = Window(request.since, request.until) if request.since or request.until else None
    with run_lock(target), Connector(settings, request.record_to, clock) as connector:
        client = connector.client
        monitor.stats = client.stats
        phases = Phases(clock)
        # the warehouse first: a busy DuckDB file stops the run before any API call
        log.info("run of pipeline %s: restoring its state from %s", target.pipeline_name, target.destination_name)
        with phases.timed("restore"):
            pipeline, positions = restored_with(target, read_positions)  # where each company starts
        record = RunRecord(target.pipeline_name, clock, resources=resources, cursors_before=positions.cursors())
        log.info("restored: cursors of %d resources", len(record.cursors_before))
        chosen: list[Company] = []
        finished: list[float] = []
        left: list[Positions] = []  # the positions the load left, read under the dataset lock after it

        def deletions(pipeline: dlt.Pipeline, sql: SqlClientBase[Any]) -> Deletions:
            left.append(read_positions(pipeline, sql))
            if left[-1].stored != positions.stored:  # this run wrote rows: drop the ones they replace
                prune_superseded(pipeline, sql, fatal=is_warehouse_fault)
            return mark_deleted(
                pipeline, client, connector.document_types, settings.hard_deletes, sql, clock, positions=left[-1]
            )

        def choose() -> Chosen:
            chosen.extend(connector.companies(request.companies))
            record.companies = [company.id for company in chosen]
            options = connector.extract_options(
                window, strict=request.strict, reconcile=request.reconcile, positions=positions
            )
            monitor.report = options.report
            kind = "a backfill" if window else "a sweep" if request.reconcile else "incremental"
            log.info("%d companies, %d resources, %s: fetching", len(chosen), len(resources), kind)
            return Chosen(connector.source(chosen, options).with_resources(*resources), deletions=deletions)

        def rows(loaded: Loaded | None, error: BaseException | None) -> list[dict[str, Any]]:
            if error is not None and exit_code(find_cause(error)) == EXIT_USAGE:
                return []  # a mistyped --company or --resource: nothing ran, so nothing to record
            after = (left[-1] if left else positions).cursors() if loaded is not None else {}
            load_id = loaded.load_id if loaded is not None else None
            if monitor.report is not None:
                phases.carve("history", out_of="extract", seconds=monitor.report.history_seconds)
            return history_rows(
                record, connector.document_types, monitor.report, monitor.stats, after, load_id, error, phases.seconds()
            )

        def on_phase(phase: str) -> None:
            monitor.set_phase(phase)
            if phase in PHASE_LINES:
                log.info("%s", PHASE_LINES[phase])
            if phase == "done":
                finished.append(clock.monotonic())  # before the history is written

        history = HistoryLog(target, clock=clock)
        loaded = load_step(pipeline, target, choose, history, rows, on_phase=on_phase, phases=phases)
        report = monitor.report
        assert report is not None
        log_outcome(loaded, report, client.stats, connector.tokens.refreshes)
        return RunResult(
            companies=chosen,
            report=report,
            table_rows={table: count for table, count in loaded.table_rows.items() if table != POSITIONS_TABLE},
            requests=client.stats.requests,
            retries=client.stats.retries,
            throttled=client.stats.throttled,
            token_refreshes=connector.tokens.refreshes,
            duration=finished[-1] - started,
            destination=target.destination_name,
            dataset=target.dataset,
            pipeline=target.pipeline_name,
            backfill=window is not None,
            views=loaded.views,
            deletions=loaded.deletions,
            sweep_requests=sweep_requests(client.stats, connector.document_types, report.swept),
            phases=phases.seconds(),
        )


PHASE_LINES = {
    "deletions": "loaded; checking deletions",
    "views": "making the analyst views",
    "done": "warehouse done; writing run_history",
}


def log_outcome(loaded: Loaded, report: RunReport, stats: RequestStats, refreshes: int) -> None:
    """The run in a few info lines: one per company, then the totals."""
    failed = {failure.company_id for failure in report.failures}
    for company, tables in sorted(report.rows.items()):
        mark = " (FAILED: see the summary)" if company in failed else ""
        log.info("company %s: %d rows in %d tables%s", company, sum(tables.values()), len(tables), mark)
    rows = sum(loaded.table_rows.values())
    log.info("load %s: %d rows into %d tables", loaded.load_id or "(none)", rows, len(loaded.table_rows))
    log.info(
        "API: %d requests, %d retries, %d throttled, %d token refreshes",
        stats.requests,
        stats.retries,
        stats.throttled,
        refreshes,
    )


def sweep_requests(stats: RequestStats, types: tuple[DocumentType, ...], swept: list[tuple[str, str]]) -> int:
    paths = {doc.resource: doc.path for doc in types}
    return sum(stats.for_path(company, paths[resource])[0] for company, resource in swept if resource in paths)
