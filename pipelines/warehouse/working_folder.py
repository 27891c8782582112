"""The pipeline's working folder: one run at a time, and always restored from the warehouse.

The warehouse is the one source of truth for cursors: dlt stores the state with every
completed load, and restores only states whose load completed. A local working folder
left by another destination, a restored warehouse backup or a crashed run could
otherwise hold cursors ahead of the data. Dropping it before each run costs a couple of
queries and removes all of those cases.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.common.pipeline import get_dlt_pipelines_dir
from filelock import FileLock, Timeout

from approvalmax_pipeline.pipelines.errors import BusyError, exception_chain
from approvalmax_pipeline.pipelines.warehouse.dataset_lock import dataset_lock
from approvalmax_pipeline.pipelines.warehouse.factory import make_pipeline

BUSY_POLL_SECONDS = 1.0


@contextlib.contextmanager
def run_lock(pipeline_name: str, pipelines_dir: str | None, wait: float) -> Iterator[None]:
    """Exclude every other run of the same pipeline on this machine, waiting up to `wait` s."""
    folder = Path(pipelines_dir or get_dlt_pipelines_dir())
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


DUCKDB_LOCKED = "Could not set lock on file"


def duckdb_lock_error(exc: BaseException) -> BaseException | None:
    """The link of the chain saying a DuckDB file is held by another process, if any."""
    return next((link for link in exception_chain(exc) if DUCKDB_LOCKED in str(link)), None)


def busy_error(locked: BaseException) -> BusyError:
    text = str(locked)
    detail = text[text.find(DUCKDB_LOCKED) :].split(". See also")[0]
    return BusyError(
        f"{detail}: another process has the DuckDB file open; it was not touched. Try again when it is done"
    )


def restored_pipeline(
    destination: Destination[Any, Any],
    dataset: str,
    pipeline_name: str,
    pipelines_dir: str | None,
    wait: float,
    token_store: str | None = None,
) -> dlt.Pipeline:
    """A pipeline whose state and schema come from the warehouse, waiting up to `wait` s
    for a DuckDB file another process holds (`token_store`: see dataset_lock)."""
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        pipeline = make_pipeline(destination, dataset, pipeline_name, pipelines_dir).drop()
        try:
            with dataset_lock(pipeline, token_store):  # a DuckDB file is another run's while it loads
                pipeline.sync_destination()
            return pipeline
        except Exception as exc:
            locked = duckdb_lock_error(exc)
            if locked is None:
                raise
            if time.monotonic() >= deadline:
                raise busy_error(locked) from exc
            time.sleep(BUSY_POLL_SECONDS)
