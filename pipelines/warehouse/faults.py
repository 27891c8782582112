"""Warehouse faults: which pass by themselves and are retried, which need a person, each in one line.

A restart, a failover, a dropped connection, a lock or serialisation timeout, BigQuery's
`backendError` or `rateLimitExceeded`: the failed step is tried again with bounded backoff for
`Target.retry_seconds` (the `warehouse_retry_seconds` setting), and the run goes on when the
warehouse is back. Every step retried here is safe to repeat: dlt keeps a load package until it
is committed, deletions and views are idempotent, and run_history rows are appended once a write
succeeds. A fault that outlasts the window becomes `WarehouseUnavailable` (exit 5); wrong
credentials, an unknown host or database, no permission or a full disk become `WarehouseRefused`
(exit 6) at once. Both read `<where> · <reason> · <what to do>`.

The rules read exception texts, SQLSTATE codes and errno values along the whole chain dlt wraps
(`PipelineStepFailed`, `DatabaseTransientException`, ...), so this module imports no driver.
"""

from __future__ import annotations

import errno
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import tenacity

from approvalmax_pipeline.pipelines.errors import (
    BusyError,
    WarehouseFault,
    WarehouseRefused,
    WarehouseUnavailable,
    exception_chain,
    interrupted,
)
from approvalmax_pipeline.pipelines.warehouse.target import Target
from approvalmax_pipeline.sources.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    import dlt

log = logging.getLogger(__name__)

T = TypeVar("T")

# Backoff between attempts: doubling from FIRST_DELAY up to MAX_DELAY seconds, within the window.
FIRST_DELAY = 1.0
MAX_DELAY = 15.0

AGAIN = "nothing was lost: run again when it is back, and the run finishes what is pending"
DISK_FULL = "free space there (or move the file), then run again: nothing was lost, the run finishes what is pending"


@dataclass(frozen=True)
class Fault:
    """What went wrong, in words: whether it passes by itself, the reason and what to do; `busy`:
    another process has the DuckDB file open (a notebook, a BI tool), waited for quietly."""

    transient: bool
    reason: str
    fix: str
    busy: bool = False


DUCKDB_LOCKED = "Could not set lock on file"
BUSY = Fault(True, "another process has the DuckDB file open", "", busy=True)
# A wait for a DuckDB file longer than this is worth one line at the default level.
LONG_WAIT = 10.0
BUSY_FIRST_DELAY = 0.25


def duckdb_lock_error(exc: BaseException) -> BaseException | None:
    """The link of the chain saying a DuckDB file is held by another process, if any."""
    return next((link for link in exception_chain(exc) if DUCKDB_LOCKED in str(link)), None)


def busy_error(locked: BaseException) -> BusyError:
    text = str(locked)
    detail = text[text.find(DUCKDB_LOCKED) :].split(". See also")[0]
    return BusyError(
        f"{detail}: another process has the DuckDB file open; it was not touched. Try again when it is done"
    )


# (SQLSTATE, fault): PostgreSQL's codes, the surest sign where the driver gives one.
_PERMANENT_CODES: dict[str, tuple[str, str]] = {
    "28P01": ("the password was refused", "correct the password in the destination's credentials"),
    "28000": ("the login was refused", "check the user name and the server's pg_hba.conf for this client"),
    "3D000": ("the database does not exist", "create it, or correct the database name in the credentials"),
    "42501": (
        "permission denied",
        "grant the user CREATE on the database and USAGE, CREATE on the dataset's schema",
    ),
    "53100": ("the server's disk is full", DISK_FULL),
    "25006": ("the server is read-only (a standby)", "point the credentials at the primary server"),
}
_TRANSIENT_CODES: dict[str, str] = {
    "57P01": "the server is shutting down or restarting",
    "57P02": "the server crashed and is restarting",
    "57P03": "the server is starting up",
    "40001": "a serialisation conflict",
    "40P01": "a deadlock with another session",
    "55P03": "a lock timeout",
    "53300": "the server has too many connections",
    "08000": "the connection was lost",
    "08003": "the connection was lost",
    "08006": "the connection was lost",
    "08001": "the server could not be reached",
}

# (text in the message, lower case; reason; fix). Permanent ones are checked first: a full disk
# reaches us inside dlt's DatabaseTransientException.
_PERMANENT_TEXTS: tuple[tuple[str, str, str], ...] = (
    ("no space left on device", "the disk is full", DISK_FULL),
    ("disk quota exceeded", "the disk quota is used up", DISK_FULL),
    ("password authentication failed", *_PERMANENT_CODES["28P01"]),
    ("could not translate host name", "the host name is unknown", "correct the host in the destination's credentials"),
    ("name or service not known", "the host name is unknown", "correct the host in the destination's credentials"),
    ("nodename nor servname", "the host name is unknown", "correct the host in the destination's credentials"),
    ("permission denied", *_PERMANENT_CODES["42501"]),
    ("read-only file system", "the file system is read-only", "put the DuckDB file on a writable disk"),
    ("accessdenied", "access denied", "grant the service account BigQuery Data Editor and Job User on the project"),
    ("invalid_grant", "the credentials were refused", "renew the service account key in the credentials"),
    # Snowflake's 390100 and 390144: a wrong password, or a key pair whose public key is not the user's
    (
        "incorrect username or password",
        "the credentials were refused",
        "correct the user and password in the credentials",
    ),
    (
        "jwt token is invalid",
        "the key pair was refused",
        "set the user's RSA_PUBLIC_KEY to the private key's public key",
    ),
)
_PERMANENT_PATTERNS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r'database "[^"]*" does not exist'), *_PERMANENT_CODES["3D000"]),
    (re.compile(r'role "[^"]*" does not exist'), "the user does not exist", "correct the user in the credentials"),
)
_TRANSIENT_TEXTS: tuple[tuple[str, str], ...] = (
    ("server closed the connection unexpectedly", "the server closed the connection"),
    ("terminating connection due to administrator command", "the server is restarting"),
    ("the database system is starting up", "the server is starting up"),
    ("the database system is shutting down", "the server is shutting down"),
    ("the database system is in recovery mode", "the server is recovering"),
    ("the database system is not yet accepting connections", "the server is starting up"),
    ("connection already closed", "the connection was lost"),
    ("no connection to the server", "the connection was lost"),
    ("could not receive data from server", "the connection was lost"),
    ("ssl connection has been closed unexpectedly", "the connection was lost"),
    ("connection reset by peer", "the connection was reset"),
    ("connection refused", "the server refuses connections (down or restarting)"),
    ("timeout expired", "connecting timed out"),
    ("deadlock detected", "a deadlock with another session"),
    ("could not serialize access", "a serialisation conflict"),
    ("lock timeout", "a lock timeout"),
    ("backenderror", "BigQuery answered backendError"),
    ("ratelimitexceeded", "BigQuery answered rateLimitExceeded"),
    ("could not connect to snowflake backend", "Snowflake could not be reached"),
    ("service unavailable", "the service is unavailable"),
)
_PERMANENT_ERRNOS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full", DISK_FULL),
    errno.EDQUOT: ("the disk quota is used up", DISK_FULL),
    errno.EACCES: ("permission denied", "let the user running the pipeline write there"),
    errno.EROFS: ("the file system is read-only", "put the file on a writable disk"),
}


def classify(exc: BaseException) -> Fault | None:
    """The warehouse fault somewhere in `exc`'s chain, or None when it is none of them (and Ctrl-C
    is never one)."""
    if interrupted(exc) or isinstance(exc, WarehouseFault):
        return None
    if duckdb_lock_error(exc) is not None:
        return BUSY
    chain = list(exception_chain(exc))
    for link in chain:
        code = getattr(link, "pgcode", None)
        if isinstance(code, str) and code in _PERMANENT_CODES:
            return Fault(False, *_PERMANENT_CODES[code])
        if isinstance(code, str) and code in _TRANSIENT_CODES:
            return Fault(True, _TRANSIENT_CODES[code], AGAIN)
        number = getattr(link, "errno", None)
        if isinstance(link, OSError) and isinstance(number, int) and number in _PERMANENT_ERRNOS:
            return Fault(False, *_PERMANENT_ERRNOS[number])
    text = " ".join(str(link) for link in chain).lower()
    for needle, reason, fix in _PERMANENT_TEXTS:
        if needle in text:
            return Fault(False, reason, fix)
    for pattern, reason, fix in _PERMANENT_PATTERNS:
        if pattern.search(text):
            return Fault(False, reason, fix)
    for needle, reason in _TRANSIENT_TEXTS:
        if needle in text:
            return Fault(True, reason, AGAIN)
    if any(type(link).__name__ in ("OperationalError", "InterfaceError") for link in chain):
        # psycopg2's family for a connection that failed in a way not listed above
        return Fault(True, "the connection failed", AGAIN)
    return None


def place(target: Target, pipeline: dlt.Pipeline | None = None) -> str:
    """Where the warehouse is, in words an operator recognises; never a password."""
    name = target.destination_name
    if pipeline is not None:
        try:
            credentials = pipeline.destination_client().config.credentials
        except Exception:  # a description must not fail where the warehouse already did
            credentials = None
        if name == "duckdb" and isinstance(getattr(credentials, "database", None), str):
            return f"DuckDB file {credentials.database}"  # type: ignore[union-attr]
        if name == "postgres" and getattr(credentials, "host", None):
            host, port, database = credentials.host, credentials.port, credentials.database  # type: ignore[union-attr]
            return f"PostgreSQL {host}:{port}/{database}"
        if name == "bigquery" and getattr(credentials, "project_id", None):
            return f"BigQuery project {credentials.project_id}"  # type: ignore[union-attr]
        if name == "snowflake" and getattr(credentials, "host", None):
            return f"Snowflake account {credentials.host}/{credentials.database}"  # type: ignore[union-attr]
    return f"{name} dataset {target.dataset}"


def named(exc: BaseException, where: str) -> WarehouseFault | BusyError | None:
    """`exc` as one of our warehouse errors (BusyError, exit 4, for a DuckDB file another process
    holds), if it is a warehouse fault."""
    if isinstance(exc, BusyError):
        return exc
    fault = classify(exc)
    if fault is None:
        return None
    locked = duckdb_lock_error(exc)
    if fault.busy and locked is not None:
        return busy_error(locked)
    kind = WarehouseUnavailable if fault.transient else WarehouseRefused
    lead = "warehouse unavailable" if fault.transient else "warehouse refused"
    return kind(f"{lead}: {where} · {fault.reason} · {fault.fix}")


# Called before each new attempt: the dataset lock registers one that takes its lock again when
# the server's restart took it away with the connection that held it.
_BEFORE_RETRY: list[Callable[[], None]] = []


def before_each_retry(hook: Callable[[], None]) -> None:
    """Run `hook` before every retried attempt (inside the attempt: its faults are retried too)."""
    _BEFORE_RETRY.append(hook)


def is_warehouse_fault(exc: BaseException) -> bool:
    return any(isinstance(link, WarehouseFault) for link in exception_chain(exc)) or classify(exc) is not None


def with_warehouse_retries(
    phase: str,
    action: Callable[[], T],
    target: Target,
    pipeline: dlt.Pipeline | None = None,
    *,
    where: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> T:
    """`action()`, tried again while it fails with a fault that passes by itself, for up to
    `target.retry_seconds`; then, or at once for a fault that does not pass, one of our warehouse
    errors naming `phase` and `where` (by default the target's place). Any other failure (and
    Ctrl-C) goes through as it is."""
    started = clock.monotonic()
    window = max(target.retry_seconds, 0.0)

    def retryable(exc: BaseException) -> bool:
        fault = classify(exc)
        return fault is not None and fault.transient

    def stop(state: tenacity.RetryCallState) -> bool:
        return clock.monotonic() - started >= window

    def fault_of(state: tenacity.RetryCallState) -> Fault | None:
        failure = state.outcome.exception() if state.outcome is not None else None
        return classify(failure) if failure is not None else None

    def wait(state: tenacity.RetryCallState) -> float:
        fault = fault_of(state)
        first = BUSY_FIRST_DELAY if fault is not None and fault.busy else FIRST_DELAY
        backoff = min(MAX_DELAY, first * 2.0 ** (state.attempt_number - 1))
        return max(0.0, min(backoff, window - (clock.monotonic() - started)))

    warned = {"long": False, "loud": False}  # a long wait for a busy file; any other fault

    def before_sleep(state: tenacity.RetryCallState) -> None:
        fault = fault_of(state)
        reason = fault.reason if fault is not None else "?"
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        # retries are info lines; at the default level a step says only that the warehouse came back
        # (or, past the window, the one line of its error). A reader holding the DuckDB file is
        # waited for quietly, with one warning once the wait is long.
        level = logging.INFO
        if fault is not None and fault.busy:
            long = clock.monotonic() - started + delay >= LONG_WAIT and not warned["long"]
            warned["long"] = warned["long"] or long
            level = logging.WARNING if long else logging.INFO
        else:
            warned["loud"] = True
        log.log(
            level,
            "warehouse %s: %s; retrying in %.0f s (for up to %.0f s)",
            phase,
            reason,
            delay,
            window - (clock.monotonic() - started),
        )

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(retryable),
        stop=stop,
        wait=wait,
        sleep=clock.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )

    def attempt() -> T:
        if retrying.statistics.get("attempt_number", 1) > 1:
            for hook in _BEFORE_RETRY:
                hook()
        return action()

    try:
        result = retrying(attempt)
    except Exception as exc:
        fault = named(exc, f"{where or place(target, pipeline)} ({phase})")
        if fault is None or fault is exc:
            raise
        raise fault from exc
    attempts = retrying.statistics.get("attempt_number", 1)
    if attempts > 1:
        waited = clock.monotonic() - started
        quiet = not warned["long"] and not warned["loud"]
        log.log(
            logging.INFO if quiet else logging.WARNING,
            "warehouse %s: back after %d attempts, %.0f s",
            phase,
            attempts,
            waited,
        )
    return result
