"""Read the per-company incremental cursors from the state dlt keeps in the warehouse."""

from __future__ import annotations

from dataclasses import replace

import dlt

from approvalmax_pipeline.pipelines.warehouse.factory import duckdb_path, make_pipeline, resolve_destination
from approvalmax_pipeline.pipelines.warehouse.target import Target
from approvalmax_pipeline.pipelines.warehouse.working_folder import restored_pipeline, run_lock
from approvalmax_pipeline.sources.approvalmax.state_layout import all_cursors


def read_cursors(target: Target) -> dict[str, dict[str, str]]:
    """resource -> company id -> cursor, as the next run will see them."""
    target = replace(target, destination=resolve_destination(target.destination))
    path = duckdb_path(make_pipeline(target))
    if path is not None and not path.exists():
        return {}  # nothing loaded yet; do not create the file by looking
    with run_lock(target):
        pipeline = restored_pipeline(target)
    return resource_cursors(pipeline)


def resource_cursors(pipeline: dlt.Pipeline) -> dict[str, dict[str, str]]:
    """resource -> company -> cursor, from the pipeline's state as it is now."""
    return all_cursors(pipeline.state)
