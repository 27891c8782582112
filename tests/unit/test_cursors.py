"""Cursor rules: lookback, never past the fetch start, never backwards."""

from datetime import UTC, datetime, timedelta

from approvalmax_pipeline.sources.approvalmax.cursors import Window, next_cursor, request_floor

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def test_first_run_has_no_floor() -> None:
    assert request_floor(None, timedelta(minutes=10)) is None


def test_floor_is_cursor_less_lookback() -> None:
    assert request_floor(T0, timedelta(minutes=10)) == T0 - timedelta(minutes=10)


def test_cursor_moves_to_newest_row_seen() -> None:
    assert next_cursor(T0, T0 + timedelta(hours=1), fetch_started=T0 + timedelta(days=1)) == T0 + timedelta(hours=1)


def test_cursor_stays_when_nothing_was_seen() -> None:
    assert next_cursor(T0, None, fetch_started=T0 + timedelta(days=1)) == T0


def test_cursor_never_passes_the_fetch_start() -> None:
    started = T0 + timedelta(minutes=5)
    assert next_cursor(T0, T0 + timedelta(hours=2), fetch_started=started) == started


def test_cursor_never_moves_backwards_on_lookback_rows() -> None:
    assert next_cursor(T0, T0 - timedelta(minutes=3), fetch_started=T0 + timedelta(hours=1)) == T0


def test_first_cursor_is_the_newest_row() -> None:
    assert next_cursor(None, T0, fetch_started=T0 + timedelta(hours=1)) == T0


def test_window_admits_rows_before_until_only() -> None:
    window = Window(since=T0, until=T0 + timedelta(days=1))
    assert window.admits(T0)
    assert not window.admits(T0 + timedelta(days=1))
    assert Window(since=T0, until=None).admits(T0 + timedelta(days=999))
