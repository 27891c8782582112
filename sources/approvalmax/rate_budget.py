"""Each company's request budget, shared by every process that reads it with one client id.

ApprovalMax reportedly counts reads per client and company, so a scheduled run, a sweep and the
webhook listener for the same company spend one budget, wherever they run. The budget lives where
the token family does: a SQLite file beside the token file (processes on one machine), or a table
in the PostgreSQL token store's database (processes on several machines, dated by that server's
clock). A request is recorded when it may go and dated by its response when that arrives, like
`pacing.CompanyPacer`'s window; a request whose process died (kill -9) never gets that date and
counts as finished `STALE_SECONDS` after it was sent.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from ..oauth_tokens.aws_store import SCHEME as AWS_SCHEME
from ..oauth_tokens.aws_store import is_aws_url
from ..oauth_tokens.postgres_store import create_tables, driver_message, import_psycopg2, is_postgres_url, redact_dsn
from ..sqlite_writes import immediate
from .errors import ConfigError

TABLE = "approvalmax_rate_budget"
SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, family text NOT NULL, "
    "company text NOT NULL, sent timestamptz NOT NULL, finished timestamptz)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_company ON {TABLE} (family, company)",
)
# A request still unanswered after this long was sent by a process that died: no request lasts
# longer (request_timeout is 60 s by default, and a retry is a request of its own).
STALE_SECONDS = 300.0
FILE_SUFFIX = ".rate-budget.sqlite"
POLL_SECONDS = 0.05  # how often to look again while every request in the window is still unanswered


class RateBudget(Protocol):
    """The shared window: `claim` records a request if the window has room, `finish` dates it."""

    def claim(self, company: str, limit: int, window: float) -> tuple[int | None, float]:
        """(ticket, 0) when the request may go now; (None, seconds to wait) when the window is full."""
        ...

    def finish(self, ticket: int) -> None: ...

    def close(self) -> None: ...


def budget_location(token_store: str) -> str:
    """Where the budget of the token family in `token_store` lives (a URL, or a file path). A store
    in AWS Secrets Manager keeps it in a file per secret under ~/.approvalmax: shared by the
    processes of one machine (DynamoDB would cost a write per request)."""
    if is_postgres_url(token_store):
        return token_store
    if is_aws_url(token_store):
        secret = re.sub(r"[^A-Za-z0-9_.-]+", "_", token_store[len(AWS_SCHEME) :].split("?", 1)[0])
        return str(Path("~/.approvalmax").expanduser() / f"aws-{secret}{FILE_SUFFIX}")
    path = Path(token_store).expanduser()
    return str(path.with_name(path.stem + FILE_SUFFIX))


def open_rate_budget(token_store: str, family: str) -> RateBudget:
    """The budget beside the token store named by the `token_store` setting."""
    if is_postgres_url(token_store):
        return PostgresRateBudget(token_store, family)
    return SqliteRateBudget(Path(budget_location(token_store)))


class SqliteRateBudget:
    """One SQLite file for processes on one machine; its write lock makes each claim atomic.

    It holds only the last window's requests and needs no durability (a lost row after a power
    cut costs one request's worth of pacing), so it is written without fsync.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # one connection, shared by the run's threads
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=60)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = OFF")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, company TEXT NOT NULL, "
                "sent REAL NOT NULL, finished REAL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS requests_company ON requests (company)")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the shared rate budget {path}: {exc}; make its folder writable "
                "(it sits beside the token store) or set rate_limit_per_minute to 0"
            ) from exc

    def claim(self, company: str, limit: int, window: float) -> tuple[int | None, float]:
        now = time.time()
        with self._lock, immediate(self._db):
            self._db.execute(
                "DELETE FROM requests WHERE company = ? AND (finished <= ? OR (finished IS NULL AND sent <= ?))",
                (company, now - window, now - STALE_SECONDS - window),
            )
            count, oldest, unanswered = self._db.execute(
                "SELECT COUNT(*), MIN(COALESCE(finished, sent + ?)), COUNT(*) - COUNT(finished) "
                "FROM requests WHERE company = ?",
                (STALE_SECONDS, company),
            ).fetchone()
            if count < limit:
                cursor = self._db.execute("INSERT INTO requests (company, sent) VALUES (?, ?)", (company, now))
                return int(cursor.lastrowid or 0), 0.0
        return None, _wait(oldest, window, now, unanswered)

    def finish(self, ticket: int) -> None:
        with self._lock:
            self._db.execute("UPDATE requests SET finished = ? WHERE id = ?", (time.time(), ticket))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresRateBudget:
    """A table in the token store's database, for workers on several machines; a transaction-level
    advisory lock per company makes each claim atomic, and the server's clock dates every row."""

    def __init__(self, dsn: str, family: str) -> None:
        self._psycopg2: Any = import_psycopg2("a PostgreSQL token store", ConfigError)
        self._dsn = dsn
        self.family = family
        self._lock = threading.Lock()
        self._connection: Any = None

    def _cursor(self) -> Any:
        if self._connection is None or self._connection.closed:
            try:
                self._connection = self._psycopg2.connect(self._dsn, connect_timeout=15)
            except self._psycopg2.Error as exc:
                raise ConfigError(
                    f"cannot reach the shared rate budget in {redact_dsn(self._dsn)}: {driver_message(exc, self._dsn)}"
                ) from exc
            self._connection.autocommit = True
            with self._connection.cursor() as cursor:
                create_tables(cursor, TABLE, SCHEMA)
        return self._connection.cursor()

    def claim(self, company: str, limit: int, window: float) -> tuple[int | None, float]:
        with self._lock, self._reconnecting() as cursor:
            cursor.execute("BEGIN")
            try:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{TABLE}:{self.family}:{company}",))
                cursor.execute(
                    f"DELETE FROM {TABLE} WHERE family = %s AND company = %s AND (finished <= clock_timestamp() - "
                    "make_interval(secs => %s) OR (finished IS NULL AND sent <= clock_timestamp() - "
                    "make_interval(secs => %s)))",
                    (self.family, company, window, window + STALE_SECONDS),
                )
                cursor.execute(
                    "SELECT COUNT(*), EXTRACT(EPOCH FROM MIN(COALESCE(finished, sent + make_interval(secs => %s))) "
                    f"- clock_timestamp()), COUNT(*) - COUNT(finished) FROM {TABLE} WHERE family = %s AND company = %s",
                    (STALE_SECONDS, self.family, company),
                )
                count, oldest, unanswered = cursor.fetchone()
                ticket = None
                if count < limit:
                    cursor.execute(
                        f"INSERT INTO {TABLE} (family, company, sent) VALUES (%s, %s, clock_timestamp()) RETURNING id",
                        (self.family, company),
                    )
                    ticket = int(cursor.fetchone()[0])
                cursor.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    cursor.execute("ROLLBACK")
                raise
        if ticket is not None:
            return ticket, 0.0
        return None, _wait(None if oldest is None else float(oldest), window, 0.0, unanswered)

    def finish(self, ticket: int) -> None:
        with self._lock, self._reconnecting() as cursor:
            cursor.execute(f"UPDATE {TABLE} SET finished = clock_timestamp() WHERE id = %s", (ticket,))

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()

    @contextlib.contextmanager
    def _reconnecting(self) -> Iterator[Any]:
        """A cursor; a connection the server dropped is opened again on the next call."""
        try:
            with self._cursor() as cursor:
                yield cursor
        except (self._psycopg2.OperationalError, self._psycopg2.InterfaceError):
            if self._connection is not None:
                self._connection.close()
            self._connection = None
            raise


def _wait(oldest: float | None, window: float, now: float, unanswered: int) -> float:
    """Seconds until the window has room: until its oldest answered request leaves it."""
    if oldest is None:
        return POLL_SECONDS
    wait = oldest + window - now
    return POLL_SECONDS if unanswered and wait > window else max(POLL_SECONDS, wait)
