"""The digest a company's record or profile list is compared by before its rows load, and when they load."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from approvalmax_pipeline.sources.approvalmax.content_digest import digest, is_digest
from approvalmax_pipeline.sources.approvalmax.cursors import Window, dump_cursor
from approvalmax_pipeline.sources.approvalmax.extract_options import ExtractOptions
from approvalmax_pipeline.sources.approvalmax.source import LoadedDigests, RunPositions
from approvalmax_pipeline.sources.approvalmax.state_layout import Positions, ResourceState
from approvalmax_pipeline.sources.approvalmax.sweeps import SweepPolicy

PROFILES = [{"userId": "u1", "firstName": "Ann", "lastName": "Lee", "email": "ann@example.com"}]


def test_equal_answers_digest_equal_whatever_their_key_order() -> None:
    reordered = [{key: PROFILES[0][key] for key in reversed(PROFILES[0])}]
    assert digest(reordered) == digest(PROFILES)


def test_any_change_changes_the_digest() -> None:
    renamed = [{**PROFILES[0], "lastName": "Li"}]
    added = [*PROFILES, {"userId": "u2"}]
    assert len({digest(PROFILES), digest(renamed), digest(added), digest([{}, *PROFILES])}) == 4


def test_a_digest_is_told_from_a_document_cursor() -> None:
    assert is_digest(digest(PROFILES))
    assert not is_digest("2026-12-07T10:00:00.000000Z")
    assert not is_digest(None)


NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def digests(state: dict[str, Any] | None, every: timedelta | None = timedelta(hours=24), forced: bool = False) -> Any:
    return LoadedDigests(state, SweepPolicy(NOW, "1765108800.1", every, forced))


def test_a_company_loads_when_its_answer_changed_and_keeps_the_new_digest_and_when() -> None:
    state: dict[str, Any] = {}
    assert digests(state).should_load("c1", PROFILES)  # never loaded
    assert ResourceState(state).cursor("c1") == digest(PROFILES)
    assert ResourceState(state).last_sweep_at("c1") == dump_cursor(NOW)
    assert not digests(state).should_load("c1", PROFILES)  # the same answer, loaded an instant ago
    renamed = [{**PROFILES[0], "lastName": "Li"}]
    assert digests(state).should_load("c1", renamed)
    assert ResourceState(state).cursor("c1") == digest(renamed)


def test_the_same_answer_loads_again_once_its_sweep_is_due_or_forced() -> None:
    day_old = {"cursors": {"c1": digest(PROFILES)}, "sweeps": {"c1": {"at": dump_cursor(NOW - timedelta(hours=25))}}}
    hour_old = {"cursors": {"c1": digest(PROFILES)}, "sweeps": {"c1": {"at": dump_cursor(NOW - timedelta(hours=1))}}}
    assert digests(day_old).should_load("c1", PROFILES)
    assert day_old["sweeps"]["c1"]["at"] == dump_cursor(NOW)
    assert not digests(hour_old).should_load("c1", PROFILES)
    assert not digests(day_old, every=None).should_load("c1", PROFILES)  # sweeps off: only a change loads
    assert digests(hour_old, forced=True).should_load("c1", PROFILES)  # --reconcile


def test_a_backfill_loads_every_company_and_records_nothing() -> None:
    def unread() -> Positions:
        raise AssertionError("a backfill reads no position")

    window = ExtractOptions(window=Window(datetime(2025, 3, 1, tzinfo=UTC), None))
    run = RunPositions("user_profiles", window, unread)
    backfill = digests(run.state)
    assert backfill.should_load("c1", PROFILES) and backfill.should_load("c1", PROFILES)
    assert list(run.moved()) == []
