"""A clock the test moves: sleeping advances it at once and is remembered."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from approvalmax_pipeline.sources.clock import Clock


class FakeClock(Clock):
    """Wall time from `read` when given (a test's own variable), else from `wall`, moved by sleeps;
    every sleep is appended to `slept` (a test's list, when given)."""

    def __init__(
        self,
        wall: datetime | None = None,
        *,
        read: Callable[[], datetime] | None = None,
        slept: list[float] | None = None,
    ) -> None:
        self.wall = wall or datetime(2026, 1, 1, tzinfo=UTC)
        self._read = read
        self.t = 0.0  # monotonic seconds
        self.slept: list[float] = [] if slept is None else slept

    def now(self) -> datetime:
        return self._read() if self._read is not None else self.wall

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.wall += timedelta(seconds=seconds)
