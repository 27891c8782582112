"""ASP.NET timestamps (up to 7 fractional digits, `Z` or an offset) to and from aware UTC datetimes."""

from __future__ import annotations

import re
from datetime import UTC, datetime

TIMESTAMP_PATTERN = r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$"
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)


def parse_timestamp(value: str) -> datetime | None:
    """An aware UTC datetime, or None when `value` is not a timestamp. Digits past the
    6th are dropped (Python keeps microseconds); no zone means UTC."""
    match = _TIMESTAMP.match(value)
    if match is None:
        return None
    day, clock, fraction, zone = match.groups()
    micros = (fraction or "").ljust(6, "0")[:6]
    if zone is None or zone == "Z":
        zone = "+00:00"
    elif ":" not in zone:
        zone = zone[:3] + ":" + zone[3:]
    try:
        parsed = datetime.fromisoformat(f"{day}T{clock}.{micros}{zone}")
    except ValueError:
        return None
    return parsed.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """The form we send in filters: UTC, microseconds, `Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
