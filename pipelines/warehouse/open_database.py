"""A DuckDB file's database held open while its dataset lock is held.

dlt opens the file for each step and each load job and closes it when its last connection goes:
each close checkpoints the file and the next open reads it again, about 30 ms a cycle (a quiet run
made eight such cycles, a full load 11, and 59 with one load worker). DuckDB gives every
connection a process opens to one file the same database, so one connection held here for the
lock's span makes those opens and closes cheap, and the file is checkpointed once, as the lock is
released. Other processes cannot open the file meanwhile, as during any load (before, one could
slip in between two of dlt's steps); in this process a connection with other settings than
dlt's (`read_only`) is refused until the lock is released.

Best effort: a database that cannot be opened here (another process holds the file, a missing
folder) is left to dlt, which fails or waits the way it always has; a retried warehouse step
(faults.py) lets go of this thread's, so the retry opens the file afresh.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from approvalmax_pipeline.pipelines.errors import interrupted
from approvalmax_pipeline.pipelines.warehouse.faults import before_each_retry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Held:
    pool: Any  # dlt's DuckDbConnectionPool, of our own
    connection: Any  # borrowed from it


class _ThreadHeld(threading.local):
    """Each thread's held connections: a retry lets go of its own only."""

    def __init__(self) -> None:
        self.connections: list[_Held] = []


_THREAD = _ThreadHeld()


def held() -> list[_Held]:
    """The connections this thread holds now."""
    return _THREAD.connections


@contextlib.contextmanager
def kept_open(credentials: Any) -> Iterator[None]:
    """Hold the database of dlt's DuckDB `credentials` open until the block ends; after a normal
    end its checkpoint's fault (a full disk) is raised, inside the caller's step."""
    kept = _borrow(credentials)
    if kept is None:
        yield
        return
    held().append(kept)
    try:
        yield
    except BaseException:
        _release(kept, quietly=True)  # the block's own error is the one to tell
        raise
    _release(kept)


def _borrow(credentials: Any) -> _Held | None:
    """A connection from a pool of dlt's own over the same credentials: DuckDB refuses a second
    connection to a file with other settings than the first's, and dlt's pool opens it as dlt does
    (its `custom_user_agent`, extensions, settings and statements). Read-only credentials load
    nothing, so they are left alone."""
    import duckdb
    from dlt.destinations.impl.duckdb.configuration import DuckDbConnectionPool

    if getattr(credentials, "read_only", False):
        return None
    pool = DuckDbConnectionPool(credentials)
    try:
        return _Held(pool, pool.borrow_conn())
    except duckdb.Error as exc:
        if interrupted(exc):
            raise
        log.debug("not holding %s open: %s", getattr(credentials, "database", "the DuckDB file"), exc)
        return None


def _release(kept: _Held, quietly: bool = False) -> None:
    """Checkpoint and close it. DuckDB's close does not report a checkpoint that failed (it leaves
    the write-ahead log), so the checkpoint is asked for first and its fault raised. `quietly`
    after the block failed: what it committed is in the log already, which the next open replays."""
    if kept not in held():
        return  # let go of already (a retry), so closed
    held().remove(kept)
    try:
        if not quietly:
            kept.connection.execute("CHECKPOINT")
    except BaseException:
        _give_back(kept, quietly=True)
        raise
    _give_back(kept, quietly)


def _give_back(kept: _Held, quietly: bool) -> None:
    """Return the connection to its pool, whose last connection it is: the pool closes the database."""
    import duckdb

    try:
        kept.pool.return_conn(kept.connection)
    except duckdb.Error as exc:
        if interrupted(exc) or not quietly:
            raise
        log.debug("closing the DuckDB file after an error: %s", str(exc).splitlines()[0])


def release_all() -> None:
    """Let go of this thread's held databases, so its retried step opens the file afresh."""
    for kept in list(held()):
        _release(kept, quietly=True)


before_each_retry(release_all)
