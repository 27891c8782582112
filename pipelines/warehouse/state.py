"""Read the per-company positions (cursors, sweeps) a pipeline's next run starts from, from the warehouse."""

from __future__ import annotations

from dataclasses import replace

from approvalmax_pipeline.pipelines.warehouse.factory import duckdb_path, make_pipeline, resolve_destination
from approvalmax_pipeline.pipelines.warehouse.target import Target
from approvalmax_pipeline.pipelines.warehouse.working_folder import restored_with, run_lock
from approvalmax_pipeline.sources.approvalmax.positions import read_positions


def read_cursors(target: Target) -> dict[str, dict[str, str]]:
    """resource -> company id -> cursor, as the next run will see them."""
    target = replace(target, destination=resolve_destination(target.destination))
    path = duckdb_path(make_pipeline(target))
    if path is not None and not path.exists():
        return {}  # nothing loaded yet; do not create the file by looking
    with run_lock(target):
        _, positions = restored_with(target, read_positions)
    return positions.cursors()
