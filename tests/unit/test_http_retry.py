"""Retry timing rules: backoff bounds and Retry-After parsing."""

import random
from datetime import UTC, datetime

import pytest

from approvalmax_pipeline.sources.http_retry import (
    Retry,
    RetryPolicy,
    is_retryable_status,
    parse_retry_after,
    with_retries,
)

from ..fake_clock import FakeClock

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_backoff_doubles_and_stays_within_half_to_full_of_the_ceiling() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=100.0)
    rng = random.Random(1)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0)):
        delays = [policy.backoff(attempt, rng) for _ in range(200)]
        assert min(delays) >= ceiling / 2 and max(delays) <= ceiling


def test_backoff_is_capped_by_max_delay() -> None:
    assert RetryPolicy(base_delay=1.0, max_delay=5.0).backoff(30, random.Random(2)) <= 5.0


def test_backoff_has_jitter() -> None:
    rng = random.Random(3)
    assert len({round(RetryPolicy().backoff(3, rng), 6) for _ in range(20)}) > 1


def test_retry_after_in_seconds() -> None:
    assert parse_retry_after("7") == 7.0


def test_retry_after_as_http_date() -> None:
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", NOW) == 30.0


def test_retry_after_in_the_past_means_now() -> None:
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", NOW) == 0.0


def test_retry_after_negative_seconds_means_now() -> None:
    assert parse_retry_after("-5") == 0.0


def test_retry_after_missing_or_garbage_is_none() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None


def test_retryable_statuses() -> None:
    assert all(is_retryable_status(code) for code in (429, 500, 502, 503, 504, 599))
    assert not any(is_retryable_status(code) for code in (200, 400, 401, 403, 404, 422))


def test_with_retries_returns_the_first_success_and_counts_attempts() -> None:
    seen: list[int] = []

    def attempt(number: int) -> str:
        seen.append(number)
        if number < 3:
            raise Retry("busy")
        return "done"

    clock = FakeClock()
    assert with_retries(attempt, RetryPolicy(max_attempts=5), _never, clock=clock) == "done"
    assert seen == [1, 2, 3] and len(clock.slept) == 2


def test_with_retries_gives_up_after_the_last_attempt_with_the_callers_error() -> None:
    def give_up(last: Retry, attempts: int) -> BaseException:
        return RuntimeError(f"{last.reason} after {attempts}")

    with pytest.raises(RuntimeError, match="busy after 3") as raised:
        with_retries(_busy, RetryPolicy(max_attempts=3), give_up, clock=FakeClock())
    assert isinstance(raised.value.__cause__, Retry)  # --debug shows what the last attempt met


def test_a_retry_after_is_waited_and_one_too_long_is_not() -> None:
    clock = FakeClock()
    calls = iter([Retry("429", retry_after=7), Retry("429", retry_after=500)])

    def attempt(number: int) -> None:
        raise next(calls)

    with pytest.raises(RuntimeError):
        with_retries(
            attempt, RetryPolicy(max_attempts=5, max_retry_after=120), lambda r, n: RuntimeError(), clock=clock
        )
    assert clock.slept == [7]


def test_other_errors_are_not_retried() -> None:
    def attempt(number: int) -> None:
        raise ValueError("no")

    clock = FakeClock()
    with pytest.raises(ValueError):
        with_retries(attempt, RetryPolicy(), _never, clock=clock)
    assert clock.slept == []


def _busy(number: int) -> None:
    raise Retry("busy")


def _never(last: Retry, attempts: int) -> BaseException:
    raise AssertionError("gave up")
