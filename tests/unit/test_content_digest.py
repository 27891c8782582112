"""The digest a company's record or profile list is compared by before its rows load, and when they load."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from approvalmax_pipeline.sources.approvalmax.content_digest import digest, is_digest
from approvalmax_pipeline.sources.approvalmax.cursors import dump_cursor
from approvalmax_pipeline.sources.approvalmax.source import LoadedDigests
from approvalmax_pipeline.sources.approvalmax.state_layout import ResourceState
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
    assert digests(state).changed("c1", PROFILES)  # never loaded
    assert ResourceState(state).cursor("c1") == digest(PROFILES)
    assert ResourceState(state).last_sweep_at("c1") == dump_cursor(NOW)
    assert not digests(state).changed("c1", PROFILES)  # the same answer, loaded an instant ago
    renamed = [{**PROFILES[0], "lastName": "Li"}]
    assert digests(state).changed("c1", renamed)
    assert ResourceState(state).cursor("c1") == digest(renamed)


def test_the_same_answer_loads_again_once_its_sweep_is_due_or_forced() -> None:
    day_old = {"cursors": {"c1": digest(PROFILES)}, "sweeps": {"c1": {"at": dump_cursor(NOW - timedelta(hours=25))}}}
    hour_old = {"cursors": {"c1": digest(PROFILES)}, "sweeps": {"c1": {"at": dump_cursor(NOW - timedelta(hours=1))}}}
    assert digests(day_old).changed("c1", PROFILES)
    assert day_old["sweeps"]["c1"]["at"] == dump_cursor(NOW)
    assert not digests(hour_old).changed("c1", PROFILES)
    assert not digests(day_old, every=None).changed("c1", PROFILES)  # sweeps off: only a change loads
    assert digests(hour_old, forced=True).changed("c1", PROFILES)  # --reconcile


def test_a_backfill_loads_every_company_and_records_nothing() -> None:
    backfill = digests(None)
    assert backfill.changed("c1", PROFILES) and backfill.changed("c1", PROFILES)
    assert list(backfill.moved("user_profiles")) == []
