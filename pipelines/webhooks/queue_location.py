"""Which queue `--queue` names: a PostgreSQL URL (replicas sharing one queue), else a SQLite file.

Kept apart from queue.py, which both kinds import for their contract.
"""

from __future__ import annotations

from pathlib import Path

from approvalmax_pipeline.pipelines.webhooks.queue import EventQueue
from approvalmax_pipeline.sources.clock import SYSTEM_CLOCK, Clock
from approvalmax_pipeline.sources.oauth_tokens.postgres_store import is_postgres_url

DEFAULT_QUEUE = ".approvalmax/webhooks.sqlite"


def is_shared(location: str) -> bool:
    """Whether `--queue` names a PostgreSQL queue that several listeners share, rather than a file."""
    return is_postgres_url(location)


def open_queue(location: str, clock: Clock = SYSTEM_CLOCK) -> EventQueue:
    """The queue `--queue` names: a `postgresql://` URL, else a SQLite file's path."""
    if is_shared(location):
        from approvalmax_pipeline.pipelines.webhooks.postgres_queue import PostgresQueue

        return PostgresQueue(location, clock)
    from approvalmax_pipeline.pipelines.webhooks.sqlite_queue import SqliteQueue

    return SqliteQueue(Path(location), clock)
