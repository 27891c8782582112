"""A DuckDB file's database held open while its dataset lock is held.

dlt opens the file for each step and each load job and closes it when its last connection goes:
each close checkpoints the file and the next open reads it again, about 30 ms a cycle (a quiet run
made eight such cycles, a full load 11, and 59 with one load worker). DuckDB gives every
connection a process opens to one file the same database, so one connection held here for the
lock's span makes those opens and closes cheap, and the file is checkpointed once, as the lock is
released. The lock already keeps every other process out of the file, so nobody waits longer.

Best effort: a database that cannot be opened here (another process holds the file, a missing
folder) is left to dlt, which fails or waits the way it always has; a retried warehouse step
(faults.py) lets go of it first, so the retry opens the file afresh.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from approvalmax_pipeline.pipelines.warehouse.faults import before_each_retry

log = logging.getLogger(__name__)

_HELD: list[Any] = []  # the connections held now (a listener may hold one per dataset)


@contextlib.contextmanager
def kept_open(credentials: Any) -> Iterator[None]:
    """Hold the database of dlt's DuckDB `credentials` open until the block ends."""
    connection = _connect_as_dlt_does(credentials)
    if connection is None:
        yield
        return
    _HELD.append(connection)
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
        log.debug("not holding %s open: %s", database, exc)
        return None


def _release(connection: Any, quietly: bool = False) -> None:
    """Close it: the last connection to close checkpoints the file, and a fault doing so (a full
    disk) is the caller's, raised inside its step and retries. `quietly` after the block failed:
    what it committed is in the file's write-ahead log already, which the next open replays."""
    import duckdb

    if connection in _HELD:
        _HELD.remove(connection)
    try:
        connection.close()
    except duckdb.Error as exc:
        if not quietly:
            raise
        log.debug("closing the DuckDB file after an error: %s", str(exc).splitlines()[0])


def release_all() -> None:
    """Let go of every held database, so a retried step opens its file afresh."""
    for connection in list(_HELD):
        _release(connection, quietly=True)


before_each_retry(release_all)
