"""Client-side pacing per company: never more than `limit` requests in any window.

ApprovalMax reportedly allows about 100 reads per minute per client and company. Pacing on
our side keeps each company's budget busy without spending requests on 429s. A request
counts from the moment it may go until its response arrives, and is then dated by that
response: the server saw it earlier, so our window is never looser than the server's, however
long the request waited for a connection.
"""

from __future__ import annotations

import collections
import math
import threading

from ..clock import SYSTEM_CLOCK, Clock

WINDOW_SECONDS = 60.0
POLL_SECONDS = 0.05  # how often to look again while the oldest request is still in flight


class Ticket:
    """One request's place in its company's window; `done()` dates it by its response."""

    __slots__ = ("finished",)

    def __init__(self) -> None:
        self.finished = math.inf  # in flight


class CompanyPacer:
    """A sliding window per key, shared by every thread of the run. `limit` 0 turns it off."""

    def __init__(
        self,
        limit: int,
        window: float = WINDOW_SECONDS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: dict[str, collections.deque[Ticket]] = {}

    def acquire(self, key: str) -> Ticket:
        """Wait until a request for `key` may be sent; hand `done` the ticket afterwards."""
        ticket = Ticket()
        if self.limit <= 0:
            return ticket
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

    def done(self, ticket: Ticket) -> None:
        """The response arrived (or the request failed): date the ticket now."""
        with self._lock:
            ticket.finished = self._clock.monotonic()
