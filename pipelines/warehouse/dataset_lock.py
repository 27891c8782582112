"""One warehouse change at a time per dataset, so per-company pipelines can run at once.

Parallel runs of different pipelines into one dataset extract and normalise side by side, but
dlt's load step creates schemas and tables and merges with DELETE and INSERT: on PostgreSQL two
at once collide (`DuplicateTable`, `pg_type_typname_nsp_index`, `DeadlockDetected`), and a DuckDB
file takes one writing process at a time. So each run holds the dataset's lock from the start of
its load to the end of its views: a PostgreSQL advisory lock (released by the server if the run
dies), or a lock file beside the DuckDB file. Waiting runs wait; nothing is retried.

BigQuery (and any other destination) has no lock of its own, and concurrent DML on one table
fails there ("Could not serialize access ... due to concurrent update"). Its lock lives where the
token family lives, which every run on one ApprovalMax connection must share anyway: an
advisory lock in the PostgreSQL token store (every Airflow worker reaches it), else a lock file
beside the token file (one machine).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
from filelock import FileLock, Timeout

from approvalmax_pipeline.pipelines.errors import BusyError
from approvalmax_pipeline.pipelines.warehouse.factory import duckdb_path
from approvalmax_pipeline.sources.oauth_tokens.postgres_store import is_postgres_url

log = logging.getLogger(__name__)

# How long a run waits for the other runs' loads into its dataset before it gives up (exit 4).
DATASET_LOCK_TIMEOUT = 3600.0


@contextlib.contextmanager
def dataset_lock(
    pipeline: dlt.Pipeline, lock_home: str | None = None, timeout: float = DATASET_LOCK_TIMEOUT
) -> Iterator[None]:
    """Hold the pipeline's dataset for a load. `lock_home` (the `token_store` setting) hosts the lock for
    destinations without one of their own; without it they pass straight through."""
    destination = pipeline.destination.destination_name if pipeline.destination else ""
    started = time.monotonic()
    lock: contextlib.AbstractContextManager[None]
    if destination == "postgres":
        credentials: Any = pipeline.destination_client().config.credentials
        key = f"approvalmax-load:{pipeline.dataset_name}"
        lock = _advisory_lock(credentials.to_native_representation(), key, pipeline.dataset_name, timeout)
    elif destination == "duckdb" and (path := duckdb_path(pipeline)) is not None:
        lock = _file_lock(path.with_name(path.name + ".load.lock"), str(path), timeout)
    elif destination and lock_home:
        # the project (BigQuery) or server, by dlt's fingerprint of the destination's credentials
        fingerprint = pipeline.destination_client().config.fingerprint()
        key = f"approvalmax-load:{destination}:{fingerprint}:{pipeline.dataset_name}"
        if is_postgres_url(lock_home):
            lock = _advisory_lock(lock_home, key, pipeline.dataset_name, timeout)
        else:
            name = "approvalmax-load-" + hashlib.sha256(key.encode()).hexdigest()[:16] + ".lock"
            folder = Path(lock_home).expanduser().parent
            folder.mkdir(parents=True, exist_ok=True)
            lock = _file_lock(folder / name, f"dataset {pipeline.dataset_name}", timeout)
    else:
        lock = contextlib.nullcontext()
    with lock:
        waited = time.monotonic() - started
        if waited > 1:
            log.info("waited %.1f s for other loads into dataset %s", waited, pipeline.dataset_name)
        yield


@contextlib.contextmanager
def _file_lock(path: Path, what: str, timeout: float) -> Iterator[None]:
    try:
        with FileLock(str(path), timeout=timeout):
            yield
    except Timeout as exc:
        raise BusyError(
            f"other loads into {what} held its lock ({path}) for {timeout:.0f} s; nothing was changed: run again later"
        ) from exc


@contextlib.contextmanager
def _advisory_lock(dsn: str, key: str, dataset: str, timeout: float) -> Iterator[None]:
    """A session-level advisory lock on its own connection: the server drops it if the run dies."""
    import psycopg2

    connection = psycopg2.connect(dsn)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = %s", (int(timeout * 1000),))
            try:
                cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
            except psycopg2.errors.QueryCanceled as exc:
                raise BusyError(
                    f"other loads into dataset {dataset} held its lock for {timeout:.0f} s; "
                    "nothing was changed: run again later"
                ) from exc
        yield
    finally:
        connection.close()  # the server drops the session's advisory lock with it
