"""The load step's small parts: run_history rows written at once or summed per minute, company records."""

from __future__ import annotations

from typing import Any

import pytest

from approvalmax_pipeline.pipelines.warehouse import load_step
from approvalmax_pipeline.pipelines.warehouse.load_step import HistoryLog, merge_history
from approvalmax_pipeline.pipelines.warehouse.target import Target
from approvalmax_pipeline.sources.approvalmax.companies import Company, companies_of, select_companies

from ..fake_clock import FakeClock


def row(company: str, resource: str, finished: int, rows: int) -> dict[str, Any]:
    return {
        "company_id": company,
        "resource": resource,
        "finished_at": finished,
        "rows_loaded": rows,
        "requests": 1,
        "retries": 0,
    }


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, Any]]]:
    calls: list[list[dict[str, Any]]] = []
    monkeypatch.setattr(load_step, "record_history", lambda target, rows, **_: calls.append(rows))
    return calls


def test_a_runs_history_is_written_at_once_row_by_row(written: list[list[dict[str, Any]]]) -> None:
    history = HistoryLog(Target(), every_seconds=0)
    history.add([row("c1", "xero_bills", 1, 5), row("c1", "xero_bills", 2, 7)])
    assert written == [[row("c1", "xero_bills", 1, 5), row("c1", "xero_bills", 2, 7)]]


def test_the_listeners_batches_are_summed_and_written_once_a_minute(written: list[list[dict[str, Any]]]) -> None:
    clock = FakeClock()
    history = HistoryLog(Target(), every_seconds=60, clock=clock)
    history.add([row("c1", "xero_bills", 1, 5)])
    clock.advance(30)
    history.add([row("c1", "xero_bills", 2, 7), row("c2", "xero_quotes", 2, 1)])
    assert written == []
    clock.advance(31)
    history.add([])
    assert written == [[{**row("c1", "xero_bills", 2, 12), "requests": 2}, row("c2", "xero_quotes", 2, 1)]]


def test_a_forced_flush_writes_what_is_pending_and_nothing_twice(written: list[list[dict[str, Any]]]) -> None:
    history = HistoryLog(Target(), every_seconds=60, clock=FakeClock())
    history.add([row("c1", "xero_bills", 1, 5)])
    history.flush(force=True)
    history.flush(force=True)
    assert len(written) == 1


def test_merged_rows_keep_the_first_start_and_the_last_finish() -> None:
    merged = merge_history([{**row("c", "r", 1, 1), "started_at": 0}, {**row("c", "r", 9, 1), "started_at": 5}])
    assert [(m["started_at"], m["finished_at"], m["rows_loaded"]) for m in merged] == [(0, 9, 2)]


def test_a_company_record_keeps_its_id_as_text_and_a_missing_name_as_empty() -> None:
    company = Company.of({"companyId": 42, "name": None, "extra": 1})
    assert (company.id, company.name, company.record["extra"]) == ("42", "", 1)


def test_companies_of_takes_records_and_mappings_alike() -> None:
    known = Company("a", "A", {"companyId": "a"})
    assert [c.id for c in companies_of([known, {"companyId": "b"}])] == ["a", "b"]


def test_selecting_companies_keeps_the_apis_order_not_the_callers() -> None:
    listed = [{"companyId": "a"}, {"companyId": "b"}, {"companyId": "c"}]
    assert [c.id for c in select_companies(listed, ["c", "a"])] == ["a", "c"]
