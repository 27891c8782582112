"""Read the per-company incremental cursors from the state dlt keeps in the warehouse."""

from __future__ import annotations

from typing import Any

import dlt
from dlt.common.destination import Destination

from approvalmax_pipeline.pipelines.warehouse.factory import duckdb_path, make_pipeline, resolve_destination
from approvalmax_pipeline.pipelines.warehouse.working_folder import restored_pipeline, run_lock

SOURCE_NAME = "approvalmax"


def read_cursors(
    destination: str | Destination[Any, Any],
    dataset: str,
    pipeline_name: str,
    pipelines_dir: str | None = None,
    wait: float = 0.0,
) -> dict[str, dict[str, str]]:
    """resource -> company id -> cursor, as the next run will see them."""
    resolved = resolve_destination(destination)
    path = duckdb_path(make_pipeline(resolved, dataset, pipeline_name, pipelines_dir))
    if path is not None and not path.exists():
        return {}  # nothing loaded yet; do not create the file by looking
    with run_lock(pipeline_name, pipelines_dir, wait):
        pipeline = restored_pipeline(resolved, dataset, pipeline_name, pipelines_dir, wait)
    return resource_cursors(pipeline)


def resource_cursors(pipeline: dlt.Pipeline) -> dict[str, dict[str, str]]:
    """resource -> company -> cursor, from the pipeline's state as it is now."""
    resources = pipeline.state.get("sources", {}).get(SOURCE_NAME, {}).get("resources", {})
    return {name: dict(state.get("cursors", {})) for name, state in resources.items() if state.get("cursors")}
