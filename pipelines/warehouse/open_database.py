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
from typing import Any

from approvalmax_pipeline.pipelines.errors import interrupted
from approvalmax_pipeline.pipelines.warehouse.faults import before_each_retry

log = logging.getLogger(__name__)

_THREAD = threading.local()  # each thread's held connections: a retry lets go of its own only


def held() -> list[Any]:
    """The connections this thread holds now."""
    if not hasattr(_THREAD, "held"):
        _THREAD.held = []
    connections: list[Any] = _THREAD.held
    return connections


@contextlib.contextmanager
def kept_open(credentials: Any) -> Iterator[None]:
    """Hold the database of dlt's DuckDB `credentials` open until the block ends; after a normal
    end its checkpoint's fault (a full disk) is raised, inside the caller's step."""
    connection = _connect_as_dlt_does(credentials)
    if connection is None:
        yield
        return
    held().append(connection)
    try:
        yield
    except BaseException:
        _release(connection, quietly=True)  # the block's own error is the one to tell
        raise
    _release(connection)


def _connect_as_dlt_does(credentials: Any) -> Any:
    """A connection opened with dlt's arguments: DuckDB refuses a second connection to a file
    with other settings than the first's (`read_only`, the `custom_user_agent` dlt passes)."""
    import duckdb

    database = getattr(credentials, "database", None)
    if not isinstance(database, str) or database.startswith(":") or getattr(credentials, "read_only", False):
        return None
    config = {key: value for key, value in (credentials.global_config or {}).items() if key == "custom_user_agent"}
    try:
        return duckdb.connect(database=database, read_only=False, config=config)
    except duckdb.Error as exc:
        if interrupted(exc):
            raise
        log.debug("not holding %s open: %s", database, exc)
        return None


def _release(connection: Any, quietly: bool = False) -> None:
    """Checkpoint and close it. DuckDB's close does not report a checkpoint that failed (it leaves
    the write-ahead log), so the checkpoint is asked for first and its fault raised. `quietly`
    after the block failed: what it committed is in the log already, which the next open replays."""
    if connection not in held():
        return  # let go of already (a retry), so closed
    held().remove(connection)
    try:
        if not quietly:
            connection.execute("CHECKPOINT")
    except BaseException:
        _close(connection, quietly=True)
        raise
    _close(connection, quietly)


def _close(connection: Any, quietly: bool) -> None:
    import duckdb

    try:
        connection.close()
    except duckdb.Error as exc:
        if interrupted(exc) or not quietly:
            raise
        log.debug("closing the DuckDB file after an error: %s", str(exc).splitlines()[0])


def release_all() -> None:
    """Let go of this thread's held databases, so its retried step opens the file afresh."""
    for connection in list(held()):
        _release(connection, quietly=True)


before_each_retry(release_all)
