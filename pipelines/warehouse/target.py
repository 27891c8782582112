"""Where a run writes, as one value: the defaults of every command, the DAG and the listener live here."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI reads the defaults below without loading dlt
    from dlt.common.destination import Destination

PIPELINE_NAME = "approvalmax"
# How long a warehouse that went away (a restart, a failover, a dropped connection) is waited for,
# retrying, before a run gives up with exit 5 (the `warehouse_retry_seconds` setting).
WAREHOUSE_RETRY_SECONDS = 180.0
DATASET_NAME = "approvalmax"


@dataclass(frozen=True)
class Target:
    """A destination's dataset, loaded by a named dlt pipeline whose working folder is `pipelines_dir`
    (None: dlt's default). `wait` is how long to wait for another run of the pipeline or a busy DuckDB
    file; `lock_home` (the `token_store` setting) hosts the dataset lock of destinations without one;
    `retry_seconds` is how long a warehouse that went away is retried for (warehouse/faults.py)."""

    destination: str | Destination[Any, Any] = "duckdb"
    dataset: str = DATASET_NAME
    pipeline_name: str = PIPELINE_NAME
    pipelines_dir: str | None = None
    wait: float = 0.0
    lock_home: str | None = None
    retry_seconds: float = WAREHOUSE_RETRY_SECONDS

    def pipelines_folder(self) -> Path:
        """Where the pipelines' working folders are: `pipelines_dir`, else dlt's default."""
        from dlt.common.pipeline import get_dlt_pipelines_dir

        return Path(self.pipelines_dir or get_dlt_pipelines_dir())

    def for_pipeline(self, suffix: str) -> Target:
        """The same dataset, loaded by a pipeline of its own (`<name>_history`, `<name>_listener`)."""
        return replace(self, pipeline_name=self.pipeline_name + suffix)

    @property
    def destination_name(self) -> str:
        return self.destination if isinstance(self.destination, str) else self.destination.destination_name
