"""One warehouse change at a time per dataset, so per-company pipelines can run at once.

Parallel runs of different pipelines into one dataset extract and normalise side by side, but
dlt's load step creates schemas and tables and merges with DELETE and INSERT: on PostgreSQL two
at once collide (`DuplicateTable`, `pg_type_typname_nsp_index`, `DeadlockDetected`), and a DuckDB
file takes one writing process at a time. So each run holds the dataset's lock from the start of
its load to the end of its views: a PostgreSQL advisory lock (released by the server if the run
dies), or a lock file beside the DuckDB file. Waiting runs wait; nothing is retried.

BigQuery, Snowflake (and any other destination) have no lock of its own, and concurrent DML on one
table fails on BigQuery ("Could not serialize access ... due to concurrent update"). Its lock lives where the
token family lives, which every run on one ApprovalMax connection must share anyway: an
advisory lock in the PostgreSQL token store (every Airflow worker reaches it), a lease in the
DynamoDB lock table of the AWS Secrets Manager token store, else a lock file beside the token file
(one machine).
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
from approvalmax_pipeline.pipelines.warehouse.factory import duckdb_credentials
from approvalmax_pipeline.pipelines.warehouse.faults import before_each_retry, with_warehouse_retries
from approvalmax_pipeline.pipelines.warehouse.open_database import kept_open
from approvalmax_pipeline.pipelines.warehouse.target import WAREHOUSE_RETRY_SECONDS, Target
from approvalmax_pipeline.sources.oauth_tokens.aws_store import is_aws_url, lease_beside
from approvalmax_pipeline.sources.oauth_tokens.lease_lock import LeaseLost, LeaseTimeout
from approvalmax_pipeline.sources.oauth_tokens.postgres_store import is_postgres_url

log = logging.getLogger(__name__)

# How long a run waits for the other runs' loads into its dataset before it gives up (exit 4).
DATASET_LOCK_TIMEOUT = 3600.0


@contextlib.contextmanager
def dataset_lock(
    pipeline: dlt.Pipeline,
    lock_home: str | None = None,
    timeout: float = DATASET_LOCK_TIMEOUT,
    retry_seconds: float = WAREHOUSE_RETRY_SECONDS,
) -> Iterator[None]:
    """Hold the pipeline's dataset for a load. `lock_home` (the `token_store` setting) hosts the lock for
    destinations without one of their own; without it they pass straight through. A PostgreSQL
    server that cannot be reached is retried for `retry_seconds` (faults.py)."""
    destination = pipeline.destination.destination_name if pipeline.destination else ""
    started = time.monotonic()
    lock: contextlib.AbstractContextManager[None]
    held: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if destination == "postgres":
        credentials: Any = pipeline.destination_client().config.credentials
        key = f"approvalmax-load:{pipeline.dataset_name}"
        where = f"PostgreSQL {credentials.host}:{credentials.port}/{credentials.database}"
        lock = _advisory_lock(
            credentials.to_native_representation(), key, pipeline.dataset_name, timeout, retry_seconds, where
        )
    elif destination == "duckdb" and (credentials := duckdb_credentials(pipeline)) is not None:
        path = Path(credentials.database)
        lock = _file_lock(path.with_name(path.name + ".load.lock"), str(path), timeout)
        held = kept_open(credentials)  # while the lock keeps other processes out (open_database.py)
    elif destination and lock_home:
        # the project (BigQuery) or server, by dlt's fingerprint of the destination's credentials
        fingerprint = pipeline.destination_client().config.fingerprint()
        key = f"approvalmax-load:{destination}:{fingerprint}:{pipeline.dataset_name}"
        if is_postgres_url(lock_home):
            where = "the token store's PostgreSQL, which holds the dataset lock"
            lock = _advisory_lock(lock_home, key, pipeline.dataset_name, timeout, retry_seconds, where)
        elif is_aws_url(lock_home):
            lock = _lease_lock(lock_home, key, pipeline.dataset_name, timeout)
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
        with held:
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
def _lease_lock(url: str, key: str, dataset: str, timeout: float) -> Iterator[None]:
    """A DynamoDB lease, renewed in the background. It holds while this process can renew it: a run
    that could not (stalled, or DynamoDB unreachable) for a whole lease may have loaded beside the
    run that took it over, and says so, with what to do, once its load is over."""
    lease = lease_beside(url, key, timeout)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(lease.hold())
        except LeaseTimeout as exc:
            raise BusyError(
                f"other loads into dataset {dataset} held its lock for {timeout:.0f} s; nothing was changed: "
                "run again later"
            ) from exc
        yield
        try:
            lease.confirm()
        except LeaseLost:
            log.error(
                "the lock on dataset %s was taken over by another run while this one loaded (it could not renew "
                "its lease): both may have loaded at once; run `approvalmax run --reconcile` to check the dataset",
                dataset,
            )


class _Advisory:
    """A session-level advisory lock on a connection of its own: the server drops it if the run dies,
    and also when the server restarts, so a retried step takes it again first (`regain`)."""

    def __init__(self, dsn: str, key: str, dataset: str, timeout: float) -> None:
        self.dsn, self.key, self.dataset, self.timeout = dsn, key, dataset, timeout
        self.connection: Any = None

    def acquire(self) -> None:
        import psycopg2

        self.close()
        self.connection = psycopg2.connect(self.dsn)
        self.connection.autocommit = True
        with self.connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = %s", (int(self.timeout * 1000),))
            try:
                cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", (self.key,))
            except psycopg2.errors.QueryCanceled as exc:
                raise BusyError(
                    f"other loads into dataset {self.dataset} held its lock for {self.timeout:.0f} s; "
                    "nothing was changed: run again later"
                ) from exc

    def regain(self) -> None:
        """Take the lock again if its connection is gone (a restart or failover dropped it)."""
        import psycopg2

        try:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except psycopg2.Error:
            log.info("the dataset lock's connection was lost: taking the lock of dataset %s again", self.dataset)
            self.acquire()

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()  # the server drops the session's advisory lock with it
            self.connection = None


_HELD: list[_Advisory] = []


def _regain_held() -> None:
    for lock in list(_HELD):
        lock.regain()


before_each_retry(_regain_held)


@contextlib.contextmanager
def _advisory_lock(
    dsn: str, key: str, dataset: str, timeout: float, retry_seconds: float, where: str
) -> Iterator[None]:
    lock = _Advisory(dsn, key, dataset, timeout)
    target = Target("postgres", dataset, retry_seconds=retry_seconds)
    try:
        with_warehouse_retries("taking the dataset lock", lock.acquire, target, where=where)
        _HELD.append(lock)
        yield
    finally:
        if lock in _HELD:
            _HELD.remove(lock)
        lock.close()
