"""Retry rules shared by the API client and the token endpoint: which failures to retry and how long to wait."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

# Failures where the request may be sent again: the server asked us to slow down or failed.
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})

# Transport failures worth another attempt (connection refused or reset, timeouts, cut responses).
RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.PoolTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter; `Retry-After` wins when the server sends one."""

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    # A server asking for a longer pause than this is treated as a failure, not waited out.
    max_retry_after: float = 120.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before attempt `attempt + 1` (attempt counts from 1): half fixed, half random."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        draw: float = (rng or random).random()
        return ceiling * (0.5 + 0.5 * draw)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date); None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def is_retryable_status(status_code: int) -> bool:
    """True for the status codes that mean 'try again later'."""
    return status_code in RETRYABLE_STATUS or status_code >= 500
