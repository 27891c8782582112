"""One run: list companies, build the source, run dlt, and gather what the summary needs."""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import Destination

from approvalmax_pipeline.pipelines.options import check_window, select_companies, select_resources
from approvalmax_pipeline.pipelines.warehouse.dataset_lock import dataset_lock
from approvalmax_pipeline.pipelines.warehouse.deletions import Deletions, mark_deleted
from approvalmax_pipeline.pipelines.warehouse.factory import (
    DATASET_NAME,
    PIPELINE_NAME,
    loader_file_format,
    resolve_destination,
)
from approvalmax_pipeline.pipelines.warehouse.run_history import RunRecord, history_rows, record_history
from approvalmax_pipeline.pipelines.warehouse.state import resource_cursors
from approvalmax_pipeline.pipelines.warehouse.views import create_views
from approvalmax_pipeline.pipelines.warehouse.working_folder import (
    busy_error,
    duckdb_lock_error,
    restored_pipeline,
    run_lock,
)
from approvalmax_pipeline.sources.approvalmax.client import RequestStats
from approvalmax_pipeline.sources.approvalmax.config import ApprovalMaxSettings, document_types
from approvalmax_pipeline.sources.approvalmax.connector import Connector
from approvalmax_pipeline.sources.approvalmax.cursors import Window
from approvalmax_pipeline.sources.approvalmax.errors import ConfigError
from approvalmax_pipeline.sources.approvalmax.report import RunReport
from approvalmax_pipeline.sources.approvalmax.settings import RESOURCE_NAMES, DocumentType


@dataclass(frozen=True)
class RunRequest:
    """What the operator asked for; defaults are a full incremental run into DuckDB."""

    destination: str | Destination[Any, Any] = "duckdb"
    dataset: str = DATASET_NAME
    pipeline_name: str = PIPELINE_NAME
    pipelines_dir: str | None = None
    companies: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    wait: float = 0.0  # seconds to wait for another run of the pipeline, or a busy DuckDB file
    record_to: Path | None = None  # keep the API's responses, pseudonymised (sources/approvalmax/recording.py)
    strict: bool = False  # a company's failure fails the run (Airflow), instead of being reported
    reconcile: bool = False  # sweep every company now (sources/approvalmax/sweeps.py)


@dataclass
class RunMonitor:
    """Live numbers a progress display may read from another thread."""

    stats: RequestStats | None = None
    report: RunReport | None = None
    phase: str = "connecting"


@dataclass
class RunResult:
    companies: list[Mapping[str, Any]]
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

    @property
    def swept(self) -> list[tuple[str, str]]:
        return self.report.swept

    @property
    def failed(self) -> bool:
        return bool(self.report.failures)


def run_pipeline(settings: ApprovalMaxSettings, request: RunRequest, monitor: RunMonitor | None = None) -> RunResult:
    """Everything `approvalmax run` does, without printing."""
    monitor = monitor or RunMonitor()
    started = time.monotonic()
    check_window(request.since, request.until)
    if request.reconcile and (request.since or request.until):
        raise ConfigError("--reconcile reads whole lists and cannot take --since/--until; run them apart")
    types = document_types(settings)
    resources = select_resources(request.resources, (*RESOURCE_NAMES[:2], *(doc.resource for doc in types)))
    destination = resolve_destination(request.destination)
    with run_lock(request.pipeline_name, request.pipelines_dir, request.wait):
        # the warehouse first: a busy DuckDB file stops the run before any API call
        pipeline = restored_pipeline(
            destination,
            request.dataset,
            request.pipeline_name,
            request.pipelines_dir,
            request.wait,
            settings.token_store,
        )
        record = RunRecord(request.pipeline_name, resources=resources, cursors_before=resource_cursors(pipeline))
        with Connector(settings, request.record_to) as connector:
            history = functools.partial(
                record_history, destination, request.dataset, request.pipelines_dir, settings.token_store
            )
            try:
                result, load_id = _extract_and_load(
                    connector, request, pipeline, destination, resources, monitor, started, record
                )
            except Exception as exc:  # the run fails as it would have; its history says so first
                history(history_rows(record, connector.document_types, monitor.report, monitor.stats, {}, None, exc))
                raise
            after = resource_cursors(pipeline)
            history(
                history_rows(record, connector.document_types, result.report, connector.client.stats, after, load_id)
            )
            return result


def _extract_and_load(
    connector: Connector,
    request: RunRequest,
    pipeline: dlt.Pipeline,
    destination: Destination[Any, Any],
    resources: tuple[str, ...],
    monitor: RunMonitor,
    started: float,
    record: RunRecord,
) -> tuple[RunResult, str | None]:
    client = connector.client
    monitor.stats = client.stats
    companies = select_companies(client.companies(), request.companies or connector.settings.company_ids)
    record.companies = [str(company["companyId"]) for company in companies]
    window = Window(request.since, request.until) if request.since or request.until else None
    options = connector.extract_options(window, strict=request.strict, reconcile=request.reconcile)
    monitor.report = options.report
    source = connector.source(companies, options).with_resources(*resources)
    monitor.phase = "loading"
    pipeline.extract(source, loader_file_format=loader_file_format(destination))  # type: ignore[arg-type]
    normalize = pipeline.normalize()
    # other pipelines may load into this dataset at the same time
    with dataset_lock(pipeline, connector.settings.token_store):
        try:
            loaded = pipeline.load()
        except Exception as exc:
            locked = duckdb_lock_error(exc)
            if locked is not None:
                raise busy_error(locked) from exc
            raise
        with pipeline.sql_client() as sql:  # one connection for both
            monitor.phase = "deletions"
            deletions = mark_deleted(pipeline, client, connector.document_types, connector.settings.hard_deletes, sql)
            monitor.phase = "views"
            views = create_views(pipeline, sql)
    monitor.phase = "done"
    table_rows = {
        table: count
        for table, count in (normalize.row_counts.items() if normalize is not None else [])
        if not table.startswith("_dlt")
    }
    load_id = loaded.loads_ids[-1] if loaded is not None and loaded.loads_ids else None
    return RunResult(
        companies=companies,
        report=options.report,
        table_rows=table_rows,
        requests=client.stats.requests,
        retries=client.stats.retries,
        throttled=client.stats.throttled,
        token_refreshes=connector.tokens.refreshes,
        duration=time.monotonic() - started,
        destination=destination.destination_name,
        dataset=request.dataset,
        pipeline=request.pipeline_name,
        backfill=window is not None,
        views=tuple(views),
        deletions=deletions,
        sweep_requests=sweep_requests(client.stats, connector.document_types, options.report.swept),
    ), load_id


def sweep_requests(stats: RequestStats, types: tuple[DocumentType, ...], swept: list[tuple[str, str]]) -> int:
    paths = {doc.resource: doc.path for doc in types}
    return sum(stats.for_path(company, paths[resource])[0] for company, resource in swept if resource in paths)
