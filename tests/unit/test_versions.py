"""Versions the lookback fetches again are skipped; new versions, failures and cursorless runs are not."""

from datetime import UTC, datetime, timedelta

from approvalmax_pipeline.sources.approvalmax.versions import TRIM_AT, LoadedVersions

T = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def test_a_version_kept_by_the_last_run_is_skipped_and_a_new_one_is_not() -> None:
    state: dict[str, dict[str, str]] = {}
    first = LoadedVersions(state)
    assert not first.is_loaded("c", "r1", T)
    assert not first.is_loaded("c", "r2", T - timedelta(hours=1))
    first.settle("c", T - timedelta(minutes=10))  # r2 lies before the next run's floor
    assert set(state["c"]) == {"r1"}
    second = LoadedVersions(state)
    assert second.is_loaded("c", "r1", T)
    assert not second.is_loaded("c", "r1", T + timedelta(seconds=1))  # changed since
    assert not second.is_loaded("other", "r1", T)


def test_a_failed_company_keeps_its_versions_and_no_cursor_keeps_none() -> None:
    state = {"c": {"r1": "2025-01-01T12:00:00.000000Z"}}
    run = LoadedVersions(state)
    assert run.is_loaded("c", "r1", T)
    run.is_loaded("c", "r9", T)
    run.forget("c")
    assert state == {"c": {"r1": "2025-01-01T12:00:00.000000Z"}}
    run.settle("c", None)
    assert "c" not in state


def test_documents_without_id_or_time_always_load() -> None:
    run = LoadedVersions({"c": {"": "x"}})
    assert not run.is_loaded("c", None, T) and not run.is_loaded("c", "", T) and not run.is_loaded("c", "r", None)


def test_trim_forgets_only_versions_below_the_bound_and_only_when_many() -> None:
    state: dict[str, dict[str, str]] = {}
    run = LoadedVersions(state)
    for i in range(TRIM_AT):
        run.is_loaded("c", f"r{i}", T - timedelta(hours=1) if i % 2 else T)
    run.trim("c", T - timedelta(minutes=10))
    run.settle("c", T - timedelta(days=1))  # a floor below everything: all that is left is kept
    assert len(state["c"]) == TRIM_AT // 2


def test_trim_waits_for_many_versions() -> None:
    state: dict[str, dict[str, str]] = {}
    run = LoadedVersions(state)
    run.is_loaded("c", "old", T - timedelta(hours=1))
    run.trim("c", T)
    run.settle("c", T - timedelta(days=1))
    assert set(state["c"]) == {"old"}
