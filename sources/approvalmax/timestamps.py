"""ASP.NET timestamps (up to 7 fractional digits, `Z` or an offset) and spec dates (`2025-03-07`)
to and from aware UTC datetimes."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# The spec types `date`, `dueDate` and `deliveryDate` as `format: date` ("2025-03-07"); live
# data has also shown them as midnight date-times. Both parse, a bare date as midnight UTC.
TIMESTAMP_PATTERN = r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?)?$"
DATE_ONLY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)


def parse_timestamp(value: str) -> datetime | None:
    """An aware UTC datetime, or None when `value` is not a timestamp or a date. Digits past
    the 6th are dropped (Python keeps microseconds); no zone means UTC; a date is its midnight UTC."""
    match = _TIMESTAMP.match(value)
    if match is None:
        return None
    day, clock, fraction, zone = match.groups()
    clock = clock or "00:00:00"
    micros = (fraction or "").ljust(6, "0")[:6]
    if zone is None or zone == "Z":
        zone = "+00:00"
    elif ":" not in zone:
        zone = zone[:3] + ":" + zone[3:]
    try:
        return datetime.fromisoformat(f"{day}T{clock}.{micros}{zone}").astimezone(UTC)
    except (ValueError, OverflowError):  # out of range once in UTC: 0001-01-01 east of it, 9999-12-31 west
        return None


def format_timestamp(value: datetime) -> str:
    """The form we send in filters: UTC, microseconds, `Z` (isoformat: strftime costs more, and
    leaves years before 1000 unpadded)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")[:-6] + "Z"
