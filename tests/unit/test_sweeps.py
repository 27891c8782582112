"""When a company's lists are read whole, and what a sweep records and skips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from approvalmax_pipeline.sources.approvalmax.company_cursor import ResourceCursors
from approvalmax_pipeline.sources.approvalmax.cursors import Window
from approvalmax_pipeline.sources.approvalmax.sweeps import SweepPolicy

T0 = datetime(2025, 1, 1, tzinfo=UTC)
LOOKBACK = timedelta(minutes=10)
DAY = timedelta(hours=24)


def policy(now: datetime, every: timedelta | None = DAY, forced: bool = False) -> SweepPolicy:
    return SweepPolicy(now=now, load_id="1700000000.5", every=every, forced=forced)


def swept_at(when: datetime) -> dict[str, Any]:
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    return {"cursors": {"c1": stamp}, "sweeps": {"c1": {"at": stamp, "load_id": "1"}}}


def test_a_sweep_is_due_once_the_last_is_older_than_every_and_never_when_off() -> None:
    assert not policy(T0 + DAY - timedelta(seconds=1)).due(T0)
    assert policy(T0 + DAY).due(T0)
    assert policy(T0).due(None)  # an install from before sweeps: once
    assert not policy(T0 + 30 * DAY, every=None).due(T0)
    assert policy(T0, every=None, forced=True).due(T0)


def test_a_first_load_is_a_sweep_even_with_sweeps_off() -> None:
    cursor = ResourceCursors({}, LOOKBACK, sweep=policy(T0, every=None))["c1"]
    assert cursor.sweeping and cursor.floor is None


def test_a_due_sweep_asks_without_a_floor_and_loads_versions_loaded_before() -> None:
    state = swept_at(T0)
    state["loaded_versions"] = {"c1": {"r1": "2025-01-01T00:00:00.000000Z"}}
    quiet = ResourceCursors(state, LOOKBACK, sweep=policy(T0 + timedelta(hours=1)))["c1"]
    assert not quiet.sweeping and quiet.floor == T0 - LOOKBACK
    assert quiet.observe([("r1", T0)], requested_at=T0) == [False]
    due = ResourceCursors(state, LOOKBACK, sweep=policy(T0 + DAY))["c1"]
    assert due.sweeping and due.floor is None
    assert due.observe([("r1", T0), ("r0", T0 - DAY)], requested_at=T0 + DAY) == [True, True]


def test_a_complete_sweep_records_its_start_and_load_id_and_a_failed_one_nothing() -> None:
    state: dict[str, Any] = {}
    done = ResourceCursors(state, LOOKBACK, sweep=policy(T0))["c1"]
    done.observe([("r1", T0 - DAY)], requested_at=T0)
    done.commit()
    assert state["sweeps"]["c1"] == {"at": "2025-01-01T00:00:00.000000Z", "load_id": "1700000000.5"}
    failed = ResourceCursors(state, LOOKBACK, sweep=policy(T0 + 2 * DAY, forced=True))["c2"]
    failed.observe([("r9", T0)], requested_at=T0 + 2 * DAY)
    failed.abandon()
    assert "c2" not in state["sweeps"]


def test_a_backfill_window_never_sweeps() -> None:
    window = Window(T0, None)
    cursor = ResourceCursors(None, LOOKBACK, window, sweep=policy(T0, forced=True))["c1"]
    assert not cursor.sweeping and cursor.floor == T0
