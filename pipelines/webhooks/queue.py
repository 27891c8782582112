"""The listener's durable queue: what the receiver and the loader ask of it.

Two kinds keep the same contract: a SQLite file (sqlite_queue.py, one listener on one machine,
the default) and PostgreSQL tables (postgres_queue.py, several replicas behind a load balancer
sharing the work); queue_location.py opens the one `--queue` names. The receiver appends and
answers 2xx only once `append` returned; the loader takes a batch, loads it, and reports each
event `done` or `failed`. An event leaves the queue only after its load committed, so a crash in
between loads it again, which the merge makes harmless.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from approvalmax_pipeline.sources.approvalmax.webhooks import WebhookEvent

KEEP_LOADED = 100_000  # loaded events kept for the latency figures
# An event whose document could not be fetched this many times is given up (logged; the next
# sweep covers its document), so a company that keeps failing cannot fill the queue.
MAX_ATTEMPTS = 20


@dataclass(frozen=True)
class QueuedEvent:
    id: int
    event: WebhookEvent
    received_at: float
    attempts: int


class EventQueue(Protocol):
    """The contract both queue kinds keep; safe to share between the receiver's threads and the loader."""

    def append(self, events: Sequence[WebhookEvent]) -> None:
        """Durable when it returns: only then may the receiver answer 2xx."""

    def take(self, limit: int, skip: Collection[str] = ()) -> list[QueuedEvent]:
        """The oldest events, fewest attempts first (so events that keep failing never hold back
        new ones), but for those of the companies in `skip`; left in the queue until `done`."""
        ...

    def done(self, events: Sequence[QueuedEvent], outcomes: dict[int, str]) -> None:
        """The events' load committed: remove them and keep when, for the latency figures."""

    def failed(self, events: Sequence[QueuedEvent], error: str) -> list[QueuedEvent]:
        """The events did not load: they stay, with the reason, for a later batch, except those
        at MAX_ATTEMPTS, which are given up and returned."""
        ...

    def depth(self) -> int:
        """Events queued, taken ones included."""
        ...

    def latencies(self) -> list[float]:
        """Seconds from receipt to warehouse commit of the events loaded, oldest first."""
        ...

    def close(self) -> None: ...
