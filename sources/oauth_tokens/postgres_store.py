"""A token store in PostgreSQL, so workers on several machines share one token family safely."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import first_line
from .errors import TokenStoreError
from .record import TokenRecord
from .sealing import PLAIN, TokenSealing, rewrite_in_current_form

TABLE = "oauth_token_store"
URL_SCHEMES = ("postgres://", "postgresql://")


def is_postgres_url(location: str) -> bool:
    """Whether a `token_store` setting names a PostgreSQL database rather than a file."""
    return location.startswith(URL_SCHEMES)


def redact_dsn(dsn: str) -> str:
    """The DSN without its password (after the user, or as `?password=`), for messages."""
    parts = urlsplit(dsn)
    try:
        _ = parts.port
    except ValueError:  # not a URL Python can read (a password with an unescaped `@` or `:`, say)
        return f"{parts.scheme}://<the URL given>"
    query = "&".join(p for p in parts.query.split("&") if not p.lower().startswith("password="))
    if parts.password is None and query == parts.query:
        return dsn
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def passwords_in(dsn: str) -> list[str]:
    """The DSN's password as written, decoded, and the pieces a driver that parsed the URL another
    way may quote (split at `@`, `:` and `/`), longest first."""
    netloc = urlsplit(dsn).netloc
    userinfo = netloc.rpartition("@")[0]
    raw = userinfo.partition(":")[2]
    query = [p.partition("=")[2] for p in urlsplit(dsn).query.split("&") if p.lower().startswith("password=")]
    found = {piece for secret in [raw, *query] for piece in (secret, unquote(secret)) if piece}
    found |= {part for secret in list(found) for part in re.split(r"[@:/]", secret) if len(part) >= 3}
    return sorted(found, key=len, reverse=True)


def driver_message(exc: BaseException, dsn: str) -> str:
    """A database driver's message about `dsn`, first line, with no part of its password: libpq
    quotes the URL's pieces when it cannot parse them."""
    text = first_line(exc)
    if text.startswith("invalid dsn") or re.search(r'"[^"]*@[^"]*"', text):  # it split the URL elsewhere than we do
        return (
            "the URL cannot be read: escape special characters of its user and password (@ as %40, : as %3A, % as %25)"
        )
    for secret in passwords_in(dsn):
        text = text.replace(secret, "***")
    return text


def import_psycopg2(what: str, error: type[Exception]) -> Any:
    """psycopg2, imported when first needed (a DuckDB user has no reason to install it), or `error`
    saying that `what` needs the `postgres` extra."""
    try:
        import psycopg2
    except ImportError as exc:
        raise error(f"{what} needs psycopg2: pip install -e '.[postgres]'") from exc
    return psycopg2


def create_tables(cursor: Any, name: str, statements: Sequence[str]) -> None:
    """Run `statements` (CREATE ... IF NOT EXISTS) in one transaction under an advisory lock on
    `name`: processes starting together would otherwise collide in pg_type's unique index. The
    cursor's connection must be in autocommit mode."""
    cursor.execute("BEGIN")
    try:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"create:{name}",))
        for statement in statements:
            cursor.execute(statement)
    except BaseException:
        with contextlib.suppress(Exception):
            cursor.execute("ROLLBACK")
        raise
    cursor.execute("COMMIT")


class PostgresTokenStore:
    """One row per token family in table `oauth_token_store`, keyed by `key`.

    `lock()` holds a session-level advisory lock on the key from read through refresh to
    save. PostgreSQL drops it when the connection ends, so a killed worker never leaves the
    store locked. Saves are committed before `save` returns. With keys in `sealing`, the
    `record` column holds the record encrypted (a JSON string); a row in an older form read with
    the lock held is rewritten in the newest form at once.
    """

    def __init__(self, dsn: str, key: str, lock_timeout: float = 120.0, sealing: TokenSealing = PLAIN) -> None:
        self._psycopg2: Any = import_psycopg2("a PostgreSQL token store", TokenStoreError)
        self._dsn = dsn
        self.key = key
        self.lock_timeout = lock_timeout
        self.sealing = sealing
        self._connection: Any = None

    @property
    def location(self) -> str:
        return f"{redact_dsn(self._dsn)} (table {TABLE}, key {self.key})"

    def __repr__(self) -> str:
        return f"PostgresTokenStore({self.location!r})"

    def _connect(self) -> Any:
        try:
            connection = self._psycopg2.connect(self._dsn, connect_timeout=15)
        except self._psycopg2.Error as exc:
            first = driver_message(exc, self._dsn)
            raise TokenStoreError(f"cannot reach the token store {self.location}: {first}") from exc
        connection.autocommit = True
        return connection

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        if self._connection is not None:
            with self._connection.cursor() as cursor:
                yield cursor
            return
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                yield cursor
        finally:
            connection.close()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET statement_timeout = %s", (int(self.lock_timeout * 1000),))
                try:
                    cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"{TABLE}:{self.key}",))
                except self._psycopg2.errors.QueryCanceled as exc:
                    raise TokenStoreError(
                        f"another process has held the token store lock {self.location} for {self.lock_timeout:.0f} s"
                    ) from exc
                cursor.execute("SET statement_timeout = 0")
                create_tables(
                    cursor,
                    TABLE,
                    [
                        f"CREATE TABLE IF NOT EXISTS {TABLE} (key text PRIMARY KEY, record jsonb NOT NULL, "
                        "updated_at timestamptz NOT NULL DEFAULT now())"
                    ],
                )
            self._connection = connection
            yield
        except self._psycopg2.Error as exc:
            raise TokenStoreError(f"token store {self.location} failed: {type(exc).__name__}") from exc
        finally:
            self._connection = None
            connection.close()  # ends the session, and with it the advisory lock

    def load(self) -> TokenRecord | None:
        with self._cursor() as cursor:
            try:
                cursor.execute(f"SELECT record::text FROM {TABLE} WHERE key = %s", (self.key,))
            except self._psycopg2.errors.UndefinedTable:
                return None
            row = cursor.fetchone()
        if row is None:
            return None
        opened = self.sealing.open(json.loads(row[0]), self.location)
        if self._connection is not None:  # the lock is held
            rewrite_in_current_form(opened, self.save, self.location)
        return opened.record

    def save(self, record: TokenRecord) -> None:
        payload = json.dumps(self.sealing.seal(record))
        try:
            with self._cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {TABLE} (key, record, updated_at) VALUES (%s, %s::jsonb, now()) "
                    "ON CONFLICT (key) DO UPDATE SET record = EXCLUDED.record, updated_at = now()",
                    (self.key, payload),
                )
        except self._psycopg2.Error as exc:
            raise TokenStoreError(f"cannot save tokens to {self.location}: {type(exc).__name__}") from exc
