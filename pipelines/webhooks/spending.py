"""The listener's share of each company's request budget, spent evenly rather than in bursts.

The pacer's window lets a company's whole budget go at once and then makes every request wait
for the window to pass: for a listener under a steady stream of events, a stall of most of a
minute. So after a batch that cost a company C calls, that company's next batch waits
C x window / (LISTENER_SHARE x limit) seconds; its events gather meanwhile, and the next list
reads cover them all for about the same calls. The share left over is for the scheduled runs
and sweeps pacing the same budget.
"""

from __future__ import annotations

from collections.abc import Mapping

from approvalmax_pipeline.sources.clock import SYSTEM_CLOCK, Clock

LISTENER_SHARE = 0.8


class Spending:
    """When each company's next batch may start; `limit` 0 (pacing off) never defers."""

    def __init__(self, limit: int, window: float, clock: Clock = SYSTEM_CLOCK, share: float = LISTENER_SHARE) -> None:
        self.seconds_per_call = window / (share * limit) if limit > 0 else 0.0
        self._clock = clock
        self._next: dict[str, float] = {}

    def deferred(self) -> tuple[frozenset[str], float]:
        """The companies whose next batch must wait (the queue leaves their events out), and the
        seconds until the first of them may go (0: none waits)."""
        now = self._clock.monotonic()
        waiting = {company: at - now for company, at in self._next.items() if at > now}
        return frozenset(waiting), min(waiting.values(), default=0.0)

    def spent(self, started: float, calls: Mapping[str, int]) -> None:
        """A batch that started at `started` (monotonic) cost each company `calls`."""
        for company, count in calls.items():
            self._next[company] = started + count * self.seconds_per_call
