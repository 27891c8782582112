"""`approvalmax demo`: the whole job against the bundled sandbox, into a local DuckDB file."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dlt
import duckdb

from approvalmax_pipeline.sandbox import Sandbox, start_sandbox
from approvalmax_pipeline.sources.approvalmax.config import ApprovalMaxCredentials, ApprovalMaxSettings

from .run import RunRequest, RunResult, run_pipeline

DEMO_PIPELINE = "approvalmax_demo"
DEMO_DATASET = "approvalmax"


@dataclass
class DemoPaths:
    workdir: Path  # pipeline working folder and token file, recreated on every demo
    duckdb_file: Path

    @property
    def token_file(self) -> Path:
        return self.workdir / "tokens.json"

    @property
    def pipelines_dir(self) -> Path:
        return self.workdir / "pipelines"


def demo_settings(sandbox: Sandbox, paths: DemoPaths) -> ApprovalMaxSettings:
    """Settings pointing at the sandbox; its client and refresh token are fakes of its own."""
    credentials = ApprovalMaxCredentials(
        client_id=sandbox.identity.client_id,
        client_secret=sandbox.identity.client_secret,
        refresh_token=sandbox.identity.issue_refresh_token(),
    )
    return ApprovalMaxSettings(
        api_base_url=sandbox.url,
        identity_base_url=sandbox.url,
        credentials=credentials,
        token_store=str(paths.token_file),
    )


def reset_demo(paths: DemoPaths) -> None:
    """Remove what an earlier demo left, and only that."""
    shutil.rmtree(paths.workdir, ignore_errors=True)
    for leftover in (paths.duckdb_file, paths.duckdb_file.with_name(paths.duckdb_file.name + ".wal")):
        leftover.unlink(missing_ok=True)
    paths.workdir.mkdir(parents=True, mode=0o700)


def table_counts(duckdb_file: Path, dataset: str) -> dict[str, int]:
    with duckdb.connect(str(duckdb_file), read_only=True) as connection:
        names = [
            row[0]
            for row in connection.execute(
                "select table_name from information_schema.tables where table_schema = ? "
                "and table_name not like '\\_dlt%' escape '\\'",
                [dataset],
            ).fetchall()
        ]
        counts: dict[str, int] = {}
        for name in names:
            row = connection.execute(f'select count(*) from "{dataset}"."{name}"').fetchone()
            counts[name] = int(row[0]) if row else 0
        return counts


def run_demo(
    paths: DemoPaths,
    companies: int,
    documents: int,
    on_step: Callable[[str, RunResult | dict[str, list[str]]], None],
) -> dict[str, int]:
    """Full load, change the sandbox, incremental load; `on_step` sees each result as it comes."""
    reset_demo(paths)
    with start_sandbox(companies=companies, documents_per_company=documents) as sandbox:
        settings = demo_settings(sandbox, paths)
        request = RunRequest(
            destination=dlt.destinations.duckdb(credentials=str(paths.duckdb_file)),
            dataset=DEMO_DATASET,
            pipeline_name=DEMO_PIPELINE,
            pipelines_dir=str(paths.pipelines_dir),
        )
        on_step("first", run_pipeline(settings, request))
        on_step("changes", sandbox.dataset.mutate(modify=5, add=3, now=datetime.now(UTC)))
        on_step("second", run_pipeline(settings, request))
    return table_counts(paths.duckdb_file, DEMO_DATASET)
