"""`approvalmax status`: how fresh each company's resources are, and what failed since, from the
warehouse's `run_history` (so it answers for every pipeline that loads the dataset)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from approvalmax_pipeline.pipelines.warehouse.factory import duckdb_path, make_pipeline
from approvalmax_pipeline.pipelines.warehouse.run_history import FRESH_STATUSES, FRESHNESS_VIEW, TABLE
from approvalmax_pipeline.pipelines.warehouse.target import Target
from approvalmax_pipeline.sources.approvalmax.errors import ApprovalMaxError
from approvalmax_pipeline.sources.errors import first_line

STATUS_PIPELINE = "approvalmax_status"  # a name for dlt's client only: no state is read or written


class NoHistory(ApprovalMaxError):
    """The dataset has no run_history yet."""


@dataclass(frozen=True)
class Freshness:
    company_id: str
    resource: str
    last_success_at: datetime | None  # None: never loaded
    age_seconds: float | None
    stale: bool


@dataclass(frozen=True)
class Failure:
    company_id: str | None
    resource: str | None
    finished_at: datetime
    error: str


def read_status(target: Target, max_age_seconds: float) -> tuple[list[Freshness], list[Failure]]:
    """Every company and resource the history knows, and the failures newer than their last success."""
    dataset = target.dataset
    pipeline = make_pipeline(replace(target, pipeline_name=STATUS_PIPELINE))
    path = duckdb_path(pipeline)
    if path is not None and not path.exists():
        raise NoHistory(f"no warehouse at {path} yet: run `approvalmax run` first")
    fresh_sql = (
        f"SELECT k.company_id, k.resource, f.last_success_at, f.age_seconds FROM "
        f"(SELECT DISTINCT company_id, resource FROM {dataset}.{TABLE} WHERE company_id IS NOT NULL) AS k "
        f"LEFT JOIN {dataset}.{FRESHNESS_VIEW} AS f ON f.company_id = k.company_id AND f.resource = k.resource "
        "ORDER BY k.company_id, k.resource"
    )
    failed_sql = failures_sql(dataset)
    try:
        with pipeline.sql_client() as client:
            fresh = client.execute_sql(fresh_sql) or []
            failed = client.execute_sql(failed_sql) or []
    except Exception as exc:
        message = first_line(exc)
        if TABLE in message or FRESHNESS_VIEW in message or "does not exist" in message:
            raise NoHistory(f"no run history in dataset {dataset} yet: run `approvalmax run` first") from exc
        raise
    freshness = [
        Freshness(
            str(company),
            str(resource),
            last,
            float(age) if age is not None else None,
            age is None or float(age) >= max_age_seconds,
        )
        for company, resource, last, age in fresh
    ]
    failures = [Failure(company, resource, finished, str(error or "")) for company, resource, finished, error in failed]
    return freshness, failures


def failures_sql(dataset: str) -> str:
    """The failures newer than their resource's last success. A failure of a whole run (no company,
    no resource: it failed before it knew them) is cleared by any later success of its pipeline;
    a join on its NULL company would never find one."""
    statuses = ", ".join(f"'{s}'" for s in FRESH_STATUSES)
    return (
        f"SELECT h.company_id, h.resource, h.finished_at, h.error FROM {dataset}.{TABLE} AS h "
        f"LEFT JOIN {dataset}.{FRESHNESS_VIEW} AS f ON f.company_id = h.company_id AND f.resource = h.resource "
        "WHERE h.status = 'failed' AND CASE WHEN h.company_id IS NULL THEN NOT EXISTS ("
        f"SELECT 1 FROM {dataset}.{TABLE} AS s WHERE s.pipeline = h.pipeline AND s.status IN ({statuses}) "
        "AND s.finished_at > h.finished_at) "
        "ELSE (f.last_success_at IS NULL OR h.finished_at > f.last_success_at) END "
        "ORDER BY h.finished_at DESC LIMIT 100"
    )


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
