"""Incremental cursor rules, kept pure: where a request starts and where the cursor moves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .timestamps import format_timestamp, parse_timestamp


@dataclass(frozen=True)
class Window:
    """A backfill: rows modified in [since, until); it neither reads nor moves cursors."""

    since: datetime | None
    until: datetime | None

    def admits(self, modified: datetime | None) -> bool:
        return self.until is None or modified is None or modified < self.until


def request_floor(cursor: datetime | None, lookback: timedelta) -> datetime | None:
    """The `modifiedAtOrAfter` to ask for: the cursor less the lookback, so late writes are seen."""
    return None if cursor is None else cursor - lookback


def next_cursor(previous: datetime | None, newest_seen: datetime | None, fetch_started: datetime) -> datetime | None:
    """Where the cursor goes once a company's rows are loaded.

    Never past the moment the fetch started: a document changed while we paged may have
    moved behind our page, and must be fetched again next time. Never backwards either.
    """
    if newest_seen is None:
        return previous
    candidate = min(newest_seen, fetch_started)
    return candidate if previous is None else max(previous, candidate)


def load_cursor(value: object) -> datetime | None:
    """A cursor as positions store it (text)."""
    return parse_timestamp(value) if isinstance(value, str) else None


def dump_cursor(value: datetime) -> str:
    return format_timestamp(value)
