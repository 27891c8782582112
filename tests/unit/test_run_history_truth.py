"""run_history says what happened: an interrupted run is `interrupted` in full words, a failure in its
cause's words, and `status` clears a whole run's failure once a later run of its pipeline succeeds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb
from dlt.pipeline.exceptions import PipelineStepFailed

from approvalmax_pipeline.pipelines.operations.status import failures_sql
from approvalmax_pipeline.pipelines.warehouse.run_history import INTERRUPTED, RunRecord, history_rows
from approvalmax_pipeline.sources.approvalmax.errors import ApprovalMaxError

from ..fake_clock import FakeClock


class NoPending:
    has_pending_data = False
    pipeline_name = "p"


def step_failed(cause: BaseException) -> PipelineStepFailed:
    """A failed extract as dlt reports it: its first line ends at `with exception:`."""
    try:
        raise cause
    except BaseException as exc:
        failed = PipelineStepFailed(NoPending(), "extract", "l1", exc, None)  # type: ignore[arg-type]
        failed.__cause__ = exc
        return failed


def rows_for(error: BaseException) -> list[dict[str, Any]]:
    record = RunRecord("p", FakeClock(), companies=["c1", "c2"], resources=("xero_bills",))
    return history_rows(record, (), None, None, {}, None, error)


def test_an_interrupted_run_is_interrupted_not_failed_with_a_whole_message() -> None:
    rows = rows_for(step_failed(KeyboardInterrupt()))
    assert [(r["status"], r["error"]) for r in rows] == [("interrupted", INTERRUPTED)] * 2


def test_a_failure_is_recorded_in_its_causes_words_not_dlts_wrapper() -> None:
    rows = rows_for(step_failed(ApprovalMaxError("company c1 is disabled.\nmore")))
    assert {r["error"] for r in rows} == {"company c1 is disabled."}


def history_table(rows: list[tuple[str | None, str | None, str, int]]) -> duckdb.DuckDBPyConnection:
    """run_history and company_freshness as the warehouse has them; rows are (company, resource,
    status, minute finished)."""
    from approvalmax_pipeline.pipelines.warehouse.run_history import freshness_statements

    db = duckdb.connect()
    db.execute("CREATE SCHEMA ds")
    db.execute(
        "CREATE TABLE ds.run_history (pipeline TEXT, company_id TEXT, resource TEXT, status TEXT, "
        "finished_at TIMESTAMP, error TEXT)"
    )
    for company, resource, status, minute in rows:
        at = datetime(2026, 1, 1, 0, minute, tzinfo=UTC).replace(tzinfo=None)
        db.execute("INSERT INTO ds.run_history VALUES ('p', ?, ?, ?, ?, 'e')", [company, resource, status, at])
    for statement in freshness_statements("ds", "duckdb"):
        db.execute(statement)
    return db


def listed(db: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return [(c, r, f.minute) for c, r, f, _e in db.execute(failures_sql("ds")).fetchall()]


def test_a_whole_runs_failure_is_cleared_by_a_later_success() -> None:
    db = history_table([(None, None, "failed", 1), ("c1", "xero_bills", "ok", 2)])
    assert listed(db) == []


def test_a_whole_runs_failure_after_the_last_success_is_listed() -> None:
    db = history_table([("c1", "xero_bills", "ok", 1), (None, None, "failed", 2)])
    assert listed(db) == [(None, None, 2)]


def test_a_resources_failure_is_cleared_only_by_that_resources_success() -> None:
    db = history_table([("c1", "xero_bills", "failed", 1), ("c2", "xero_bills", "ok", 2), ("c1", "users", "ok", 3)])
    assert listed(db) == [("c1", "xero_bills", 1)]
