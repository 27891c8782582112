"""The single-machine queue (queue.py's contract): webhook events on disk before the 2xx.

SQLite in WAL mode with `synchronous = FULL`: a commit is on disk (fsync) when `append` returns,
so an answered event survives kill -9 and power loss. The loader takes events in arrival order,
and `done` removes them in the transaction that records their latency, after the warehouse
commit; a crash in between loads them again, which the merge makes harmless.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Sequence
from pathlib import Path

from approvalmax_pipeline.pipelines.webhooks.queue import KEEP_LOADED, MAX_ATTEMPTS, QueuedEvent
from approvalmax_pipeline.sources.approvalmax.webhooks import WebhookEvent
from approvalmax_pipeline.sources.clock import SYSTEM_CLOCK, Clock
from approvalmax_pipeline.sources.sqlite_writes import immediate

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    request_type TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_time TEXT NOT NULL,
    received_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS loaded (
    id INTEGER PRIMARY KEY,
    company_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    received_at REAL NOT NULL,
    committed_at REAL NOT NULL,
    outcome TEXT NOT NULL
);
"""


class SqliteQueue:
    """One SQLite file; safe to share between the receiver's threads and the loader."""

    def __init__(self, path: Path, clock: Clock = SYSTEM_CLOCK) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def append(self, events: Sequence[WebhookEvent]) -> None:
        """Durable when it returns: only then may the receiver answer 2xx."""
        now = self._clock.now().timestamp()
        rows = [(e.company_id, e.request_id, e.request_type, e.event_type, e.timestamp, now) for e in events]
        with self._lock, immediate(self._db):
            self._db.executemany(
                "INSERT INTO events (company_id, request_id, request_type, event_type, event_time, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def take(self, limit: int, skip: Collection[str] = ()) -> list[QueuedEvent]:
        """The oldest events, fewest attempts first (so events that keep failing never hold back
        new ones), but for those of the companies in `skip`; left in the queue until `done`."""
        skipped = sorted(skip)
        where = f"WHERE company_id NOT IN ({', '.join('?' * len(skipped))}) " if skipped else ""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, company_id, request_id, request_type, event_type, event_time, received_at, attempts "
                f"FROM events {where}ORDER BY attempts, id LIMIT ?",
                (*skipped, limit),
            ).fetchall()
        return [
            QueuedEvent(row[0], WebhookEvent(row[1], row[2], row[3], row[4], row[5]), row[6], row[7]) for row in rows
        ]

    def done(self, events: Sequence[QueuedEvent], outcomes: dict[int, str]) -> None:
        """The events' load committed: remove them and keep when, for the latency figures."""
        now = self._clock.now().timestamp()
        with self._lock, immediate(self._db):
            self._db.executemany(
                "INSERT OR REPLACE INTO loaded VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (q.id, q.event.company_id, q.event.request_id, q.received_at, now, outcomes.get(q.id, "loaded"))
                    for q in events
                ],
            )
            self._db.executemany("DELETE FROM events WHERE id = ?", [(q.id,) for q in events])
            self._db.execute("DELETE FROM loaded WHERE id <= (SELECT MAX(id) FROM loaded) - ?", (KEEP_LOADED,))

    def failed(self, events: Sequence[QueuedEvent], error: str) -> list[QueuedEvent]:
        """The events did not load: they stay, with the reason, for the next batch, except those
        at MAX_ATTEMPTS, which are given up and returned."""
        spent = [q for q in events if q.attempts + 1 >= MAX_ATTEMPTS]
        with self._lock, immediate(self._db):
            self._db.executemany(
                "UPDATE events SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                [(error[:500], q.id) for q in events],
            )
            self._db.executemany("DELETE FROM events WHERE id = ?", [(q.id,) for q in spent])
        return spent

    def depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def latencies(self) -> list[float]:
        """Seconds from receipt to warehouse commit of the events loaded, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT committed_at - received_at FROM loaded ORDER BY id").fetchall()
        return [float(row[0]) for row in rows]
