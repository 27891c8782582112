"""One warehouse change at a time per dataset, so per-company pipelines can run at once.

Parallel runs of different pipelines into one dataset extract and normalise side by side, but
dlt's load step creates schemas and tables and merges with DELETE and INSERT: on PostgreSQL two
at once collide (`DuplicateTable`, `pg_type_typname_nsp_index`, `DeadlockDetected`), and a DuckDB
file takes one writing process at a time. So each run holds the dataset's lock from the start of
its load to the end of its views: a PostgreSQL advisory lock (released by the server if the run
dies), or a lock file beside the DuckDB file. Waiting runs wait; nothing is retried.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
from filelock import FileLock, Timeout

from .errors import BusyError
from .factory import duckdb_path

log = logging.getLogger(__name__)

# How long a run waits for the other runs' loads into its dataset before it gives up (exit 4).
DATASET_LOCK_TIMEOUT = 3600.0


@contextlib.contextmanager
def dataset_lock(pipeline: dlt.Pipeline, timeout: float = DATASET_LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the pipeline's dataset for a load; other destinations pass straight through."""
    destination = pipeline.destination.destination_name if pipeline.destination else ""
    started = time.monotonic()
    lock: contextlib.AbstractContextManager[None]
    if destination == "postgres":
        lock = _postgres_lock(pipeline, timeout)
    elif destination == "duckdb" and (path := duckdb_path(pipeline)) is not None:
        lock = _file_lock(path, timeout)
    else:
        lock = contextlib.nullcontext()
    with lock:
        waited = time.monotonic() - started
        if waited > 1:
            log.info("waited %.1f s for other loads into dataset %s", waited, pipeline.dataset_name)
        yield


@contextlib.contextmanager
def _file_lock(database: Path, timeout: float) -> Iterator[None]:
    path = database.with_name(database.name + ".load.lock")
    try:
        with FileLock(str(path), timeout=timeout):
            yield
    except Timeout as exc:
        raise BusyError(
            f"other loads into {database} held its lock ({path}) for {timeout:.0f} s; nothing was changed: "
            "run again later"
        ) from exc


@contextlib.contextmanager
def _postgres_lock(pipeline: dlt.Pipeline, timeout: float) -> Iterator[None]:
    import psycopg2

    credentials: Any = pipeline.destination_client().config.credentials
    connection = psycopg2.connect(credentials.to_native_representation())
    key = f"approvalmax-load:{pipeline.dataset_name}"
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = %s", (int(timeout * 1000),))
            try:
                cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
            except psycopg2.errors.QueryCanceled as exc:
                raise BusyError(
                    f"other loads into dataset {pipeline.dataset_name} held its lock for {timeout:.0f} s; "
                    "nothing was changed: run again later"
                ) from exc
        yield
    finally:
        connection.close()  # the server drops the session's advisory lock with it
