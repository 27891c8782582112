"""The pipeline's working folder: one run at a time, and always restored from the warehouse.

The warehouse is the one source of truth for cursors: they are loaded with the documents
(`_approvalmax_cursors`, read back only from completed loads, as dlt restores its state). A local working folder
left by another destination, a restored warehouse backup or a crashed run could
otherwise hold cursors ahead of the data. Dropping it before each run costs a couple of
queries and removes all of those cases.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import dlt
from dlt.common.destination.client import WithStateSync
from dlt.common.schema import Schema
from filelock import FileLock, Timeout

from approvalmax_pipeline.pipelines.errors import BusyError
from approvalmax_pipeline.pipelines.warehouse.dataset_lock import dataset_lock
from approvalmax_pipeline.pipelines.warehouse.factory import make_pipeline
from approvalmax_pipeline.pipelines.warehouse.faults import busy_error, duckdb_lock_error, with_warehouse_retries
from approvalmax_pipeline.pipelines.warehouse.target import Target
from approvalmax_pipeline.sources.approvalmax.state_layout import SOURCE_NAME

BUSY_POLL_SECONDS = 1.0
T = TypeVar("T")
__all__ = ["adopt_stored_schema", "busy_error", "duckdb_lock_error", "restored_pipeline", "restored_with", "run_lock"]


@contextlib.contextmanager
def run_lock(target: Target) -> Iterator[None]:
    """Exclude every other run of the same pipeline on this machine, waiting up to `target.wait` s."""
    pipeline_name, wait = target.pipeline_name, target.wait
    folder = target.pipelines_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{pipeline_name}.run.lock"
    try:
        with FileLock(str(path), timeout=max(wait, 0.0)):
            yield
    except Timeout as exc:
        raise BusyError(
            f"another run of pipeline {pipeline_name} is in progress (lock {path}); "
            "it was not disturbed: try again later, or pass --wait SECONDS"
        ) from exc


def restored_pipeline(target: Target) -> dlt.Pipeline:
    """A pipeline whose state and schema come from the warehouse, waiting up to `target.wait` s
    for a DuckDB file another process holds (and, like a warehouse that went away, for up to
    `target.retry_seconds`: faults.py)."""
    return restored_with(target, lambda pipeline: None)[0]


def restored_with(target: Target, read: Callable[[dlt.Pipeline], T]) -> tuple[dlt.Pipeline, T]:
    """`restored_pipeline`, and what `read` reads from the warehouse under the same lock and retries
    (a run's positions: sources/approvalmax/positions.py)."""
    return with_warehouse_retries("restoring the pipeline's state", lambda: _restored(target, read), target)


def _restored(target: Target, read: Callable[[dlt.Pipeline], T]) -> tuple[dlt.Pipeline, T]:
    deadline = time.monotonic() + max(target.wait, 0.0)
    while True:
        pipeline = make_pipeline(target).drop()
        try:
            # a DuckDB file is another run's while it loads
            with dataset_lock(pipeline, target.lock_home, retry_seconds=target.retry_seconds):
                pipeline.sync_destination()
                if SOURCE_NAME not in pipeline.schemas:  # a pipeline's first run: start from what others stored
                    adopt_stored_schema(pipeline)
                found = read(pipeline)
            return pipeline, found
        except Exception as exc:
            locked = duckdb_lock_error(exc)
            if locked is None:
                raise
            if time.monotonic() >= deadline:
                raise busy_error(locked) from exc
            time.sleep(BUSY_POLL_SECONDS)


def adopt_stored_schema(pipeline: dlt.Pipeline) -> None:
    """Start from the dataset's newest `approvalmax` schema, whichever pipeline stored it.

    dlt's merge replaces a document's nested rows only in the nested tables its schema knows hold
    data: a pipeline that had never seen a document with tracking rows (a new listener, a new
    per-company pipeline) would leave a changed document's old tracking rows behind.
    """
    with pipeline.destination_client() as client:
        stored = client.get_stored_schema(SOURCE_NAME) if isinstance(client, WithStateSync) else None
    if stored is None:
        return
    if SOURCE_NAME in pipeline.schemas and pipeline.schemas[SOURCE_NAME].version_hash == stored.version_hash:
        return
    pipeline.schemas.save_schema(Schema.from_dict(json.loads(stored.schema)))
