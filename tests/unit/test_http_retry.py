"""Retry timing rules: backoff bounds and Retry-After parsing."""

import random
from datetime import UTC, datetime

from sources.http_retry import RetryPolicy, is_retryable_status, parse_retry_after

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
