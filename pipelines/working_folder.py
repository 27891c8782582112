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

from sources.approvalmax.errors import ApprovalMaxError

from .factory import make_pipeline

BUSY_POLL_SECONDS = 1.0


class BusyError(ApprovalMaxError):
    """Another run holds the pipeline or its DuckDB file."""


@contextlib.contextmanager
def run_lock(pipeline_name: str, pipelines_dir: str | None, wait: float) -> Iterator[None]:
    """Exclude every other run of the same pipeline on this machine, waiting up to `wait` s."""
    folder = Path(pipelines_dir or get_dlt_pipelines_dir())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{pipeline_name}.run.lock"
    try:
        with FileLock(str(path), timeout=max(wait, 0.0)):
            yield
    except Timeout:
        raise BusyError(
            f"another run of pipeline {pipeline_name} is in progress (lock {path}); "
            "it was not disturbed: try again later, or pass --wait SECONDS"
        ) from None


def is_duckdb_busy(exc: BaseException) -> bool:
    """True when a DuckDB file could not be opened because another process holds it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if "Could not set lock on file" in str(current):
            return True
        stack.extend(
            link
            for link in (getattr(current, "exception", None), current.__cause__, current.__context__)
            if isinstance(link, BaseException)
        )
    return False


def busy_message(exc: BaseException) -> str:
    text = str(exc)
    start = text.find("Could not set lock on file")
    detail = text[start:].split(". See also")[0] if start >= 0 else "the DuckDB file is in use"
    return f"{detail}: another process has the DuckDB file open; it was not touched. Try again when it is done"


def restored_pipeline(
    destination: Destination[Any, Any],
    dataset: str,
    pipeline_name: str,
    pipelines_dir: str | None,
    wait: float,
) -> dlt.Pipeline:
    """A pipeline whose state and schema come from the warehouse, waiting up to `wait` s
    for a DuckDB file another process holds."""
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        pipeline = make_pipeline(destination, dataset, pipeline_name, pipelines_dir).drop()
        try:
            pipeline.sync_destination()
            return pipeline
        except Exception as exc:
            if not is_duckdb_busy(exc):
                raise
            if time.monotonic() >= deadline:
                raise BusyError(busy_message(exc)) from None
            time.sleep(BUSY_POLL_SECONDS)


def duckdb_path(pipeline: dlt.Pipeline) -> Path | None:
    """The DuckDB file a pipeline writes to (None for other destinations); opens nothing."""
    if pipeline.destination is None or pipeline.destination.destination_name != "duckdb":
        return None
    database = getattr(pipeline.destination_client().config.credentials, "database", None)
    return Path(database) if isinstance(database, str) and database != ":memory:" else None
