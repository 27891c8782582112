"""The queue listener replicas share (queue.py's contract): two PostgreSQL tables, claimed by locks.

Several `approvalmax listen` replicas behind a load balancer append to and take from the same
tables. `append` commits before it returns (with `synchronous_commit` on), so an answered event
survives the replica's kill -9. `take` claims in a transaction it leaves open on a connection of
its own: the events' rows (`FOR UPDATE SKIP LOCKED`, so other replicas pass them by) and their
documents (transaction-level advisory locks, so no two replicas fetch and load one document at
once, where an older answer could land after a newer one). The claim commits once every event
taken is reported `done` or `failed`, or at the next `take`. A replica that dies drops its
connection, and PostgreSQL releases its claim at once; the others load those events.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Collection, Sequence
from typing import Any

from approvalmax_pipeline.pipelines.webhooks.queue import KEEP_LOADED, MAX_ATTEMPTS, QueuedEvent
from approvalmax_pipeline.sources.approvalmax.errors import ConfigError
from approvalmax_pipeline.sources.approvalmax.webhooks import WebhookEvent
from approvalmax_pipeline.sources.clock import SYSTEM_CLOCK, Clock
from approvalmax_pipeline.sources.oauth_tokens.postgres_store import (
    create_tables,
    driver_message,
    import_psycopg2,
    redact_dsn,
)

log = logging.getLogger(__name__)

EVENTS = "approvalmax_webhook_events"
LOADED = "approvalmax_webhook_loaded"
SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {EVENTS} (id bigserial PRIMARY KEY, company_id text NOT NULL, "
    "request_id text NOT NULL, request_type text NOT NULL, event_type text NOT NULL, event_time text NOT NULL, "
    "received_at double precision NOT NULL, attempts integer NOT NULL DEFAULT 0, last_error text)",
    f"CREATE INDEX IF NOT EXISTS {EVENTS}_next ON {EVENTS} (attempts, id)",
    f"CREATE TABLE IF NOT EXISTS {LOADED} (id bigint PRIMARY KEY, company_id text NOT NULL, "
    "request_id text NOT NULL, received_at double precision NOT NULL, committed_at double precision NOT NULL, "
    "outcome text NOT NULL)",
)
# seconds: the receiver's threads wait behind a reconnect, and a webhook sender does not wait long
CONNECT_TIMEOUT = 5
# pg_stat_activity (and pg_locks by its pid) shows which replica holds which claim
APPLICATION_NAME = f"approvalmax listen {os.getpid()} {socket.gethostname()}"[:63]
COLUMNS = "id, company_id, request_id, request_type, event_type, event_time, received_at, attempts"
# The server closes the session of a replica whose machine vanished (no kill, no FIN) after about
# idle + interval * count seconds, and with it the replica's claim.
KEEPALIVE = {"tcp_keepalives_idle": 10, "tcp_keepalives_interval": 5, "tcp_keepalives_count": 3}


class PostgresQueue:
    """Tables `approvalmax_webhook_events` and `approvalmax_webhook_loaded` in the URL's database
    (its default schema), created if missing. One connection appends and counts, in autocommit;
    another holds the loader's claim."""

    def __init__(self, dsn: str, clock: Clock = SYSTEM_CLOCK) -> None:
        psycopg2 = import_psycopg2("a PostgreSQL --queue", ConfigError)
        self._psycopg2: Any = psycopg2
        self._dsn = dsn
        self._clock = clock
        self.location = f"{redact_dsn(dsn)} (tables {EVENTS}, {LOADED})"
        self._writing = threading.Lock()
        self._claiming = threading.Lock()
        self._claimed: set[int] = set()
        self._claimer: Any = None
        self._writer: Any = None
        try:
            self._writer = self._connect(autocommit=True)
            self._create_tables()
        except psycopg2.Error as exc:
            self._drop("_writer")
            raise ConfigError(
                f"cannot use the webhook queue {self.location}: {self._said(exc)}; check --queue's host, port, "
                "database, user and password, that the server is up, and that the user may create tables there"
            ) from exc

    def __repr__(self) -> str:
        return f"PostgresQueue({self.location!r})"

    def _said(self, exc: BaseException) -> str:
        """The driver's first line, with no part of the password."""
        return driver_message(exc, self._dsn)

    def _connect(self, autocommit: bool) -> Any:
        connection = self._psycopg2.connect(
            self._dsn, connect_timeout=CONNECT_TIMEOUT, application_name=APPLICATION_NAME
        )
        connection.autocommit = True
        with connection.cursor() as cursor:
            for name, value in KEEPALIVE.items():
                cursor.execute(f"SET {name} = %s", (value,))
            cursor.execute("SHOW synchronous_commit")
            if cursor.fetchone()[0] == "off":  # a commit must be on disk before the 2xx
                cursor.execute("SET synchronous_commit = on")
        connection.autocommit = autocommit
        return connection

    def _create_tables(self) -> None:
        with self._writer.cursor() as cursor:
            create_tables(cursor, EVENTS, SCHEMA)

    def _written(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One autocommit statement on the writing connection. A connection found broken (the server
        restarted since its last use) is opened again and the statement sent once more: a statement
        that had committed before the break is then written twice, which is harmless (an event
        loaded twice merges to the same row)."""
        with self._writing:
            for attempt in (1, 2):
                try:
                    if self._writer is None or self._writer.closed:
                        self._writer = self._connect(autocommit=True)
                    with self._writer.cursor() as cursor:
                        cursor.execute(sql, args)
                        return list(cursor.fetchall()) if cursor.description else []
                except (self._psycopg2.OperationalError, self._psycopg2.InterfaceError):
                    self._drop("_writer")
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    def _drop(self, name: str) -> None:
        connection = getattr(self, name)
        setattr(self, name, None)
        if connection is not None:
            connection.close()  # never raises; the server ends the session and its locks

    def close(self) -> None:
        with self._claiming:
            if self._claimer is not None and not self._claimer.closed:
                try:
                    self._claimer.commit()  # what was reported; the rest is released
                except self._psycopg2.Error as exc:
                    log.warning(
                        "webhook queue %s: the last claim ended with the connection: %s",
                        self,
                        self._said(exc),
                    )
            self._drop("_claimer")
        with self._writing:
            self._drop("_writer")

    def append(self, events: Sequence[WebhookEvent]) -> None:
        """Committed when it returns (one statement): only then may the receiver answer 2xx."""
        if not events:
            return
        now = self._clock.now().timestamp()
        rows = [(e.company_id, e.request_id, e.request_type, e.event_type, e.timestamp, now) for e in events]
        values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows))
        self._written(
            f"INSERT INTO {EVENTS} (company_id, request_id, request_type, event_type, event_time, received_at) "
            f"VALUES {values}",
            [value for row in rows for value in row],
        )

    def take(self, limit: int, skip: Collection[str] = ()) -> list[QueuedEvent]:
        """The oldest unclaimed events, fewest attempts first, of documents no other replica holds and
        companies not in `skip`; claimed until reported. A lost connection is logged and gives an
        empty batch (the loader waits, then asks again)."""
        with self._claiming:
            try:
                return self._claim(limit, sorted(skip))
            except self._psycopg2.Error as exc:
                log.warning("webhook queue %s unavailable, retried next batch: %s", self, self._said(exc))
                self._claimed.clear()
                self._drop("_claimer")
                return []

    def _claim(self, limit: int, skip: list[str]) -> list[QueuedEvent]:
        if self._claimer is None or self._claimer.closed:
            self._claimer = self._connect(autocommit=False)
        self._claimer.commit()  # a batch never reported (the warehouse failed) is released
        self._claimed.clear()
        with self._claimer.cursor() as cursor:
            cursor.execute(
                f"SELECT {COLUMNS} FROM {EVENTS} WHERE NOT (company_id = ANY(%s::text[])) "
                "ORDER BY attempts, id LIMIT %s FOR UPDATE SKIP LOCKED",
                (skip, limit),
            )
            rows = cursor.fetchall()
            documents = sorted({(row[1], row[2]) for row in rows})
            held: set[tuple[str, str]] = set()
            if documents:
                cursor.execute(
                    "SELECT c, r FROM unnest(%s::text[], %s::text[]) AS d(c, r) "
                    "WHERE pg_try_advisory_xact_lock(hashtext(%s), hashtext(c || ' ' || r))",
                    ([c for c, _r in documents], [r for _c, r in documents], EVENTS),
                )
                held = {(c, r) for c, r in cursor.fetchall()}
        taken = [
            QueuedEvent(row[0], WebhookEvent(row[1], row[2], row[3], row[4], row[5]), row[6], row[7])
            for row in rows
            if (row[1], row[2]) in held  # the others' documents are another replica's until it commits
        ]
        self._claimed = {q.id for q in taken}
        if not taken:
            self._claimer.commit()
        return taken

    def done(self, events: Sequence[QueuedEvent], outcomes: dict[int, str]) -> None:
        """The events' load committed: remove them and keep when, for the latency figures."""
        now = self._clock.now().timestamp()
        rows = [
            (q.id, q.event.company_id, q.event.request_id, q.received_at, now, outcomes.get(q.id, "loaded"))
            for q in events
        ]
        values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows))
        self._report(
            events,
            (
                f"INSERT INTO {LOADED} VALUES {values} ON CONFLICT (id) "
                "DO UPDATE SET committed_at = EXCLUDED.committed_at, outcome = EXCLUDED.outcome",
                [value for row in rows for value in row],
            ),
            (f"DELETE FROM {EVENTS} WHERE id = ANY(%s::bigint[])", [[q.id for q in events]]),
            (
                f"DELETE FROM {LOADED} WHERE id IN (SELECT id FROM {LOADED} WHERE id <= "
                f"(SELECT MAX(id) FROM {LOADED}) - %s FOR UPDATE SKIP LOCKED)",
                [KEEP_LOADED],
            ),
        )

    def failed(self, events: Sequence[QueuedEvent], error: str) -> list[QueuedEvent]:
        """The events did not load: they stay, with the reason, for a later batch, except those
        at MAX_ATTEMPTS, which are given up and returned."""
        spent = [q for q in events if q.attempts + 1 >= MAX_ATTEMPTS]
        reported = self._report(
            events,
            (
                f"UPDATE {EVENTS} SET attempts = attempts + 1, last_error = %s WHERE id = ANY(%s::bigint[])",
                [error[:500], [q.id for q in events]],
            ),
            (f"DELETE FROM {EVENTS} WHERE id = ANY(%s::bigint[])", [[q.id for q in spent]]),
        )
        return spent if reported else []

    def _report(self, events: Sequence[QueuedEvent], *statements: tuple[str, Sequence[Any]]) -> bool:
        """The statements in the claim's transaction, committed once every event taken is reported.
        A lost connection is logged: the events stay queued and load again (harmless)."""
        if not events:
            return True
        with self._claiming:
            try:
                if self._claimer is None or self._claimer.closed:
                    self._claimer = self._connect(autocommit=False)
                with self._claimer.cursor() as cursor:
                    for sql, args in statements:
                        cursor.execute(sql, args)
                self._claimed -= {q.id for q in events}
                if not self._claimed:
                    self._claimer.commit()
                return True
            except self._psycopg2.Error as exc:
                log.warning(
                    "webhook queue %s: %d events not reported, loaded again later: %s",
                    self,
                    len(events),
                    self._said(exc),
                )
                self._claimed.clear()
                self._drop("_claimer")
                return False

    def depth(self) -> int:
        return int(self._written(f"SELECT count(*) FROM {EVENTS}")[0][0])

    def latencies(self) -> list[float]:
        """Seconds from receipt to warehouse commit of the events loaded, oldest first."""
        return [float(row[0]) for row in self._written(f"SELECT committed_at - received_at FROM {LOADED} ORDER BY id")]
