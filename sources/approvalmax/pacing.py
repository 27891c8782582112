"""Client-side pacing per company: never more than `limit` requests in any window.

ApprovalMax reportedly allows about 100 reads per minute per client and company. Pacing on
our side keeps each company's budget busy without spending requests on 429s. A request
counts from the moment it may go until its response arrives, and is then dated by that
response: the server saw it earlier, so our window is never looser than the server's, however
long the request waited for a connection. With a shared budget (rate_budget.py) the window is
the one every process of the same client id keeps; without one, this process's own.
"""

from __future__ import annotations

import collections
import logging
import math
import threading

from ..clock import SYSTEM_CLOCK, Clock
from .rate_budget import POLL_SECONDS, RateBudget

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0
ALONE_SECONDS = 60.0  # after the shared budget failed, pace alone this long before trying it again


class Ticket:
    """One request's place in its company's window; `done()` dates it by its response."""

    __slots__ = ("finished", "shared")

    def __init__(self) -> None:
        self.finished = math.inf  # in flight
        self.shared: int | None = None  # its row in the shared budget


class CompanyPacer:
    """A sliding window per key, shared by every thread of the run (and, with `shared`, by every
    process of the client id). `limit` 0 turns it off."""

    def __init__(
        self,
        limit: int,
        window: float = WINDOW_SECONDS,
        clock: Clock = SYSTEM_CLOCK,
        shared: RateBudget | None = None,
    ) -> None:
        self.limit = limit
        self.window = window
        self.shared = shared if limit > 0 else None
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: dict[str, collections.deque[Ticket]] = {}
        self._alone_until = -math.inf  # while the shared budget is failing: this process's own window

    def acquire(self, key: str) -> Ticket:
        """Wait until a request for `key` may be sent; hand `done` the ticket afterwards."""
        ticket = Ticket()
        if self.limit <= 0:
            return ticket
        if self.shared is not None and self._clock.monotonic() >= self._alone_until:
            try:
                return self._acquire_shared(key, ticket)
            except Exception as exc:  # the budget file or database failed: pace this process alone a while
                self._lose_shared(exc)
        while True:
            with self._lock:
                now = self._clock.monotonic()
                sent = self._sent.setdefault(key, collections.deque())
                while sent and sent[0].finished <= now - self.window:
                    sent.popleft()
                if len(sent) < self.limit:
                    sent.append(ticket)
                    return ticket
                oldest = sent[0].finished
                wait = POLL_SECONDS if oldest == math.inf else oldest + self.window - now
            self._clock.sleep(wait)

    def _acquire_shared(self, key: str, ticket: Ticket) -> Ticket:
        assert self.shared is not None
        while True:
            claimed, wait = self.shared.claim(key, self.limit, self.window)
            if claimed is not None:
                ticket.shared = claimed
                return ticket
            self._clock.sleep(wait)

    def done(self, ticket: Ticket) -> None:
        """The response arrived (or the request failed): date the ticket now."""
        if ticket.shared is not None and self.shared is not None:
            try:
                self.shared.finish(ticket.shared)
            except Exception as exc:  # its row counts as in flight until stale: stricter, never looser
                self._lose_shared(exc)
            return
        with self._lock:
            ticket.finished = self._clock.monotonic()

    def _lose_shared(self, exc: Exception) -> None:
        """Pace this process alone for ALONE_SECONDS, then try the shared budget again (a database
        that restarted is reconnected then); warned once per outage."""
        with self._lock:
            warn = self._clock.monotonic() >= self._alone_until + ALONE_SECONDS  # not in an outage already
            self._alone_until = self._clock.monotonic() + ALONE_SECONDS
        if warn:
            log.warning(
                "the shared rate budget failed (%s: %s); pacing this process on its own for %.0f s, then trying again",
                type(exc).__name__,
                str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                ALONE_SECONDS,
            )

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()
