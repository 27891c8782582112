"""Read the per-company incremental cursors out of dlt's pipeline state."""

from __future__ import annotations

from typing import Any

from dlt.common.destination import Destination

from .factory import make_pipeline

SOURCE_NAME = "approvalmax"


def read_cursors(
    destination: str | Destination[Any, Any],
    dataset: str,
    pipeline_name: str,
    pipelines_dir: str | None = None,
    from_destination: bool = False,
) -> dict[str, dict[str, str]]:
    """resource -> company id -> cursor. `from_destination` first restores the state stored in
    the warehouse (what a fresh working folder, such as an Airflow worker's, would use)."""
    pipeline = make_pipeline(destination, dataset, pipeline_name, pipelines_dir)
    if from_destination:
        pipeline.sync_destination()
    resources = pipeline.state.get("sources", {}).get(SOURCE_NAME, {}).get("resources", {})
    return {
        name: dict(resource_state.get("cursors", {}))
        for name, resource_state in resources.items()
        if resource_state.get("cursors")
    }
