"""Where a run's time went, phase by phase, for the summary, --json and run_history.

Without it a slower run is one number; with it, a regression names its phase. `history` is the
part of extract spent making `request_versions` rows (measured by the sinks), so the phases add
up to the run's time and none is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from approvalmax_pipeline.sources.clock import SYSTEM_CLOCK, Clock

PHASES = ("restore", "extract", "normalize", "load", "deletions", "views", "history", "run_history")


class Phases:
    """Seconds per phase of one run (or one listener batch); a phase not reached is absent."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._seconds: dict[str, float] = {}

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = self._clock.monotonic()
        try:
            yield
        finally:
            self.add(phase, self._clock.monotonic() - started)

    def add(self, phase: str, seconds: float) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        self._seconds[phase] = self._seconds.get(phase, 0.0) + seconds

    def carve(self, part: str, out_of: str, seconds: float) -> None:
        """Count `seconds` of `out_of` as `part` instead (history's share of extract)."""
        if seconds <= 0 or out_of not in self._seconds:
            return
        seconds = min(seconds, self._seconds[out_of])
        self._seconds[out_of] -= seconds
        self.add(part, seconds)

    def seconds(self) -> dict[str, float]:
        """The phases reached, in run order, to the millisecond."""
        return {phase: round(self._seconds[phase], 3) for phase in PHASES if phase in self._seconds}
