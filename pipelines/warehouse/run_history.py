"""`run_history` in the warehouse: one row per run, company and resource, and `company_freshness`.

Written after the run's own load (or its failure) by a pipeline of its own (`<pipeline>_history`),
so a failed load package of the run is never retried by it, under the dataset's lock, as an
append: rows are never updated. Analysts and `approvalmax status` read it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import dlt
from dlt.common.destination import Destination

from approvalmax_pipeline.pipelines.errors import WarehouseFault, find_cause, interrupted
from approvalmax_pipeline.pipelines.warehouse.dataset_lock import dataset_lock
from approvalmax_pipeline.pipelines.warehouse.factory import loader_file_format, make_pipeline, resolve_destination
from approvalmax_pipeline.pipelines.warehouse.faults import is_warehouse_fault, named, place, with_warehouse_retries
from approvalmax_pipeline.pipelines.warehouse.phases import PHASES
from approvalmax_pipeline.pipelines.warehouse.target import Target
from approvalmax_pipeline.pipelines.warehouse.views import DIALECTS, translate
from approvalmax_pipeline.sources.approvalmax.client import RequestStats
from approvalmax_pipeline.sources.approvalmax.cursors import load_cursor
from approvalmax_pipeline.sources.approvalmax.report import RunReport
from approvalmax_pipeline.sources.approvalmax.settings import USER_PROFILES_PATH, USER_PROFILES_RESOURCE, DocumentType
from approvalmax_pipeline.sources.clock import SYSTEM_CLOCK, Clock
from approvalmax_pipeline.sources.errors import first_line

log = logging.getLogger(__name__)

TABLE = "run_history"
FRESHNESS_VIEW = "company_freshness"
# A resource is fresh as of its last run that loaded it, or found it not applicable (404).
FRESH_STATUSES = ("ok", "not_applicable")
# The other statuses: "failed", and "interrupted" (Ctrl-C or SIGINT stopped the run).

COLUMNS: dict[str, dict[str, Any]] = {
    "run_id": {"data_type": "text", "nullable": False},
    "load_id": {"data_type": "text", "nullable": True},
    "pipeline": {"data_type": "text", "nullable": False},
    "started_at": {"data_type": "timestamp", "nullable": False},
    "finished_at": {"data_type": "timestamp", "nullable": False},
    "company_id": {"data_type": "text", "nullable": True},
    "resource": {"data_type": "text", "nullable": True},
    "status": {"data_type": "text", "nullable": False},
    "rows_loaded": {"data_type": "bigint", "nullable": False},
    "requests": {"data_type": "bigint", "nullable": False},
    "retries": {"data_type": "bigint", "nullable": False},
    "error": {"data_type": "text", "nullable": True},
    "cursor_before": {"data_type": "timestamp", "nullable": True},
    "cursor_after": {"data_type": "timestamp", "nullable": True},
    # the run's seconds per phase, the same on each of its rows; run_history's own write is not known
    # when its rows are made, so it is in the summary and --json only
    **{f"{phase}_seconds": {"data_type": "double", "nullable": True} for phase in PHASES if phase != "run_history"},
}


@dataclass
class RunRecord:
    """What one run knows of itself as it goes, for its rows in `run_history`."""

    pipeline: str
    clock: Clock = SYSTEM_CLOCK
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: datetime | None = None
    companies: list[str] = field(default_factory=list)
    resources: tuple[str, ...] = ()
    cursors_before: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.started_at is None:
            self.started_at = self.clock.now()


def history_rows(
    record: RunRecord,
    document_types: Sequence[DocumentType],
    report: RunReport | None,
    stats: RequestStats | None,
    cursors_after: Mapping[str, Mapping[str, str]],
    load_id: str | None,
    error: BaseException | None = None,
    phases: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """One row per company and resource; a run that failed before it knew its companies gets one
    row with neither."""
    finished_at = record.clock.now()
    paths = {doc.resource: doc.path for doc in document_types}
    paths[USER_PROFILES_RESOURCE] = USER_PROFILES_PATH
    failures = {(f.company_id, f.resource): f.message for f in (report.failures if report else [])}
    absent = {(f.company_id, f.resource) for f in (report.not_applicable if report else [])}
    stopped = error is not None and interrupted(error)
    message = error_text(error) if error is not None else None
    targets: list[tuple[str | None, str | None]] = [(c, r) for c in record.companies for r in record.resources]
    targets = targets or [(None, None)]
    rows = []
    for company, resource in targets:
        key = (company or "", resource or "")
        if error is not None:
            status, text = ("interrupted" if stopped else "failed"), message
        elif key in failures:
            status, text = "failed", failures[key]
        elif key in absent:
            status, text = "not_applicable", None
        else:
            status, text = "ok", None
        requests, retries = (0, 0)
        if stats is not None and company and resource in paths:
            requests, retries = stats.for_path(company, paths[resource])
        loaded = (
            report.rows[company].get(resource or "", 0) if report and error is None and company in report.rows else 0
        )
        before = record.cursors_before.get(resource or "", {}).get(company or "")
        after = cursors_after.get(resource or "", {}).get(company or "") if error is None else before
        rows.append(
            {
                "run_id": record.run_id,
                "load_id": load_id,
                "pipeline": record.pipeline,
                "started_at": record.started_at,
                "finished_at": finished_at,
                "company_id": company,
                "resource": resource,
                "status": status,
                "rows_loaded": loaded,
                "requests": requests,
                "retries": retries,
                "error": text,
                "cursor_before": load_cursor(before),
                "cursor_after": load_cursor(after),
                **{f"{phase}_seconds": seconds for phase, seconds in (phases or {}).items() if phase != "run_history"},
            }
        )
    return rows


INTERRUPTED = (
    "interrupted (Ctrl-C or SIGINT): nothing after the last completed load counts; the next run continues there"
)


def error_text(error: BaseException) -> str:
    """The error's own words, not dlt's wrapper's first line (`Pipeline execution failed at step=...
    with exception:`, cut where the cause begins)."""
    if interrupted(error):
        return INTERRUPTED
    return first_line(find_cause(error))


def write_history(target: Target, rows: list[dict[str, Any]], patient: bool = True) -> None:
    """Append the rows and (re)create `company_freshness`, under the dataset's lock, by a pipeline of
    its own (`<pipeline>_history`, named after the rows' pipeline).

    The rows become a load package first; only loading it talks to the warehouse, and that is what a
    warehouse that went away retries (`patient`). A package that still fails stays pending in the
    pipeline's working folder and is loaded with the next rows, so rows are neither lost nor doubled."""
    history = replace(target, pipeline_name=str(rows[0]["pipeline"]) + "_history")
    destination = resolve_destination(target.destination)
    try:  # this part writes the pipeline's working folder only: a full disk there is named so
        pipeline = make_pipeline(history)
        # rows for dlt's normaliser, which adds `_dlt_load_id` and `_dlt_id` as the table has always had
        # them (an Arrow table without them fails a warehouse whose run_history an earlier version made)
        resource = dlt.resource(rows, name=TABLE, write_disposition="append", columns=COLUMNS)  # type: ignore[call-overload]
        pipeline.extract(resource, loader_file_format=history_file_format(destination, len(rows)))  # type: ignore[arg-type]
        pipeline.normalize()
    except Exception as exc:
        folder = history.pipelines_folder() / history.pipeline_name
        fault = None if interrupted(exc) else named(exc, f"the working folder {folder}")
        if fault is None:
            raise
        raise fault from exc

    def load() -> None:
        with dataset_lock(pipeline, target.lock_home, retry_seconds=target.retry_seconds):
            pipeline.load()
            dialect = DIALECTS.get(destination.destination_name, "duckdb")
            with pipeline.sql_client() as client:
                for statement in freshness_statements(target.dataset, dialect):
                    client.execute_sql(statement)

    window = target if patient else replace(target, retry_seconds=0)
    with_warehouse_retries("writing run_history", load, window, pipeline)


# Up to this many rows go as INSERT where the warehouse takes it (DuckDB): a quiet run over a few
# companies writes nothing else, and parquet would import pyarrow.parquet (and pandas, where it is
# installed) for them, 0.15 s of a 2.6 s run. Beyond, parquet: 9,000 rows (1,000 companies) as
# INSERT took about 1 s longer.
FEW_HISTORY_ROWS = 500


def history_file_format(destination: Destination[Any, Any], rows: int) -> str | None:
    if rows <= FEW_HISTORY_ROWS and destination.capabilities().preferred_loader_file_format == "insert_values":
        return "insert_values"
    return loader_file_format(destination)


def freshness_statements(ds: str, dialect: str) -> list[str]:
    statuses = ", ".join(f"'{s}'" for s in FRESH_STATUSES)
    body = (
        "SELECT company_id, resource, MAX(finished_at) AS last_success_at, "
        "DATE_DIFF('second', MAX(finished_at), CURRENT_TIMESTAMP) AS age_seconds "
        f"FROM {ds}.{TABLE} WHERE status IN ({statuses}) AND company_id IS NOT NULL GROUP BY company_id, resource"
    )
    if dialect == "postgres":
        return [
            f"DROP VIEW IF EXISTS {ds}.{FRESHNESS_VIEW}",
            translate(f"CREATE VIEW {ds}.{FRESHNESS_VIEW} AS {body}", dialect),
        ]
    return [translate(f"CREATE OR REPLACE VIEW {ds}.{FRESHNESS_VIEW} AS {body}", dialect)]


def record_history(
    target: Target, rows: list[dict[str, Any]], after: BaseException | None = None, keep_going: bool = False
) -> None:
    """write_history, retrying a warehouse that went away for the target's retry window; rows that
    still fail wait in the history pipeline's working folder and are written with the next ones.

    `after` is the step's own error, if it failed: its rows get one attempt when that error was
    the warehouse's (it was waited for already), and nothing here is raised over it. Otherwise a
    warehouse that stays away fails the step with its one line and exit code, unless `keep_going`
    (the listener: it logs the line and goes on). Any other failure is logged, never raised;
    Ctrl-C while it writes still stops the run with 130."""
    if not rows:
        return
    patient = after is None or not is_warehouse_fault(after)
    try:
        write_history(target, rows, patient)
        log.info("run_history: %d rows written", len(rows))
    except Exception as exc:
        if interrupted(exc):
            raise
        fault = exc if isinstance(exc, WarehouseFault) else named(exc, f"{place(target)} (writing run_history)")
        if fault is None:
            log.warning("could not write run_history for this run: %s", first_line(exc))
        elif after is None and not keep_going:
            if fault is exc:
                raise
            raise fault from exc
        else:  # after a failed step its own line says it; the listener goes on, so this is its line
            log.log(logging.INFO if after else logging.ERROR, "%s; run_history rows follow with the next ones", fault)
