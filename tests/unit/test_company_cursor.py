"""One company's cursor: where it asks from, what it keeps, and where it moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from approvalmax_pipeline.sources.approvalmax.company_cursor import ResourceCursors
from approvalmax_pipeline.sources.approvalmax.cursors import Window

T0 = datetime(2025, 1, 1, tzinfo=UTC)
LOOKBACK = timedelta(minutes=10)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_a_first_run_asks_for_everything() -> None:
    assert ResourceCursors({}, LOOKBACK)["c1"].floor is None


def test_the_floor_is_the_cursor_less_the_lookback() -> None:
    state = {"cursors": {"c1": "2025-01-01T01:00:00Z"}}
    assert ResourceCursors(state, LOOKBACK)["c1"].floor == at(50)


def test_commit_moves_the_cursor_to_the_newest_document_but_not_past_the_first_request() -> None:
    state: dict[str, Any] = {}
    cursor = ResourceCursors(state, LOOKBACK)["c1"]
    cursor.observe([("r1", at(5)), ("r2", at(30))], requested_at=at(20))
    cursor.commit()
    assert state["cursors"]["c1"] == "2025-01-01T00:20:00.000000Z"


def test_a_version_loaded_before_is_skipped_and_a_new_one_kept() -> None:
    state: dict[str, Any] = {}
    first = ResourceCursors(state, LOOKBACK)["c1"]
    assert first.observe([("r1", at(55)), ("r2", at(58))], requested_at=at(60)) == [True, True]
    first.commit()
    again = ResourceCursors(state, LOOKBACK)["c1"]
    assert again.observe([("r1", at(55)), ("r2", at(59))], requested_at=at(61)) == [False, True]


def test_documents_older_than_the_floor_are_dropped_and_reported() -> None:
    older: list[datetime] = []
    state = {"cursors": {"c1": "2025-01-01T01:00:00Z"}}
    cursor = ResourceCursors(state, LOOKBACK, on_older=older.append)["c1"]
    assert cursor.observe([("old", at(10)), ("new", at(55))], requested_at=at(70)) == [False, True]
    assert older == [at(50)]


def test_abandon_leaves_cursor_and_versions_as_they_were() -> None:
    kept = {"c1": {"r0": "2025-01-01T00:55:00.000000Z"}}
    state: dict[str, Any] = {"cursors": {"c1": "2025-01-01T01:00:00Z"}, "loaded_versions": kept}
    cursor = ResourceCursors(state, LOOKBACK)["c1"]
    cursor.observe([("r1", at(80))], requested_at=at(90))
    cursor.abandon()
    assert state == {"cursors": {"c1": "2025-01-01T01:00:00Z"}, "loaded_versions": kept}


def test_a_backfill_window_reads_and_moves_nothing() -> None:
    cursor = ResourceCursors(None, LOOKBACK, Window(at(0), at(60)))["c1"]
    assert cursor.floor == at(0)
    assert cursor.observe([("in", at(30)), ("after", at(60))], requested_at=at(90)) == [True, False]
    cursor.commit()  # nothing to write to


def test_a_missing_type_is_reported_the_first_time_only_and_forgotten_once_it_answers() -> None:
    state: dict[str, Any] = {}
    assert ResourceCursors(state, LOOKBACK)["c1"].not_applicable() is True
    assert ResourceCursors(state, LOOKBACK)["c1"].not_applicable() is False
    answered = ResourceCursors(state, LOOKBACK)["c1"]
    answered.observe([], requested_at=at(0))
    answered.commit()
    assert state["not_applicable"] == []
