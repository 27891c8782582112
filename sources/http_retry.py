"""The one retry helper of the API client and the token endpoint: which failures to retry, how long to
wait, and the loop (tenacity's) that does it."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx
import tenacity

from .clock import SYSTEM_CLOCK, Clock

T = TypeVar("T")

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
    return max(0.0, (when - (now or SYSTEM_CLOCK.now())).total_seconds())


def is_retryable_status(status_code: int) -> bool:
    """True for the status codes that mean 'try again later'."""
    return status_code in RETRYABLE_STATUS or status_code >= 500


class Retry(Exception):
    """Raised by an attempt that may be made again: `reason` for the log, the server's
    `retry_after` if it sent one, and the `response` it answered, if any."""

    def __init__(self, reason: str, *, retry_after: float | None = None, response: httpx.Response | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.response = response


def with_retries(
    attempt: Callable[[int], T],
    policy: RetryPolicy,
    give_up: Callable[[Retry, int], BaseException],
    *,
    clock: Clock = SYSTEM_CLOCK,
    rng: random.Random | None = None,
    on_retry: Callable[[Retry, int, float], None] | None = None,
) -> T:
    """Call `attempt(number)` (from 1) until it returns, raises something other than Retry, or the
    policy says stop: after `max_attempts`, or at once when the server asks for a longer pause than
    `max_retry_after`. Then the error `give_up(last retry, attempts)` is raised, caused by it.
    `on_retry(retry, attempt, delay)` sees each pause before it is slept."""

    def last_retry(state: tenacity.RetryCallState) -> Retry:
        assert state.outcome is not None
        failure = state.outcome.exception()
        assert isinstance(failure, Retry)
        return failure

    def stop(state: tenacity.RetryCallState) -> bool:
        retry_after = last_retry(state).retry_after
        too_long = retry_after is not None and retry_after > policy.max_retry_after
        return state.attempt_number >= policy.max_attempts or too_long

    def wait(state: tenacity.RetryCallState) -> float:
        retry_after = last_retry(state).retry_after
        return retry_after if retry_after is not None else policy.backoff(state.attempt_number, rng)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.next_action is not None:
            on_retry(last_retry(state), state.attempt_number, state.next_action.sleep)

    retrying = tenacity.Retrying(
        stop=stop,
        wait=wait,
        retry=tenacity.retry_if_exception_type(Retry),
        sleep=clock.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    number = 0
    try:
        for trial in retrying:
            with trial:
                number = trial.retry_state.attempt_number
                return attempt(number)
    except Retry as failure:
        raise give_up(failure, number) from failure
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover
