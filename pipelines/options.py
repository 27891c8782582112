"""Checks and parsing of run options, kept pure so each rule has its own small test."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from approvalmax_pipeline.sources.approvalmax.errors import ConfigError
from approvalmax_pipeline.sources.approvalmax.settings import RESOURCE_NAMES


def parse_when(option: str, value: str | None) -> datetime | None:
    """`--since`/`--until`: a date (midnight UTC) or an ISO 8601 timestamp (UTC if no zone)."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"{option} {value!r} is not a date: use YYYY-MM-DD or an ISO 8601 timestamp such as 2025-01-31T12:00:00Z"
        ) from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def check_window(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise ConfigError("--since must be earlier than --until")
    if until is not None and since is None:
        raise ConfigError("--until needs --since: a backfill window has a start")


def select_resources(names: Sequence[str], available: Sequence[str] = RESOURCE_NAMES) -> tuple[str, ...]:
    """The resources to load; all `available` ones when none are named."""
    if not names:
        return tuple(available)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ConfigError(f"unknown resource {', '.join(map(repr, unknown))}: choose from {', '.join(available)}")
    return tuple(dict.fromkeys(names))


__all__ = ["check_window", "parse_when", "select_resources"]
