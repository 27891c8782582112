"""Per-company pipelines started at once into one dataset, as Airflow's parallel tasks run them:
every run exits 0 on its first attempt and the warehouse is exact, views included."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from approvalmax_pipeline.sandbox import Sandbox

from ..conftest import Workspace, running_sandbox, workspace_on
from .truth import assert_equals_sandbox, export

# `make test` starts 4 at once for 2 rounds; `make test-parallel` (in CI) 8 for 3 rounds.
COMPANIES = int(os.environ.get("PARALLEL_COMPANIES", "4"))
ROUNDS = int(os.environ.get("PARALLEL_ROUNDS", "2"))


@pytest.fixture
def many(tmp_path: Path) -> Iterator[Workspace]:
    """Companies of 40 documents: the load steps, not the data, are what collide."""
    server: Sandbox
    with running_sandbox(COMPANIES, 40) as server, workspace_on(tmp_path, server) as made:
        yield made


def run_all_at_once(workspace: Workspace, *args: str) -> list[subprocess.CompletedProcess[str]]:
    """One `approvalmax run --company C --pipeline-name amx_N` per company, all started together."""
    workspace.release()
    companies = [company.company_id for company in workspace.sandbox.dataset.companies]
    command = [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", "run", "--no-progress", *args]
    runs = [
        subprocess.Popen(
            [*command, "--company", company, "--pipeline-name", f"amx_{index}"],
            cwd=workspace.root,
            env=workspace.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index, company in enumerate(companies)
    ]
    results = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(run.args, run.returncode, stdout, stderr))
    return results


def assert_rounds_exact(workspace: Workspace) -> None:
    for round_ in range(ROUNDS):
        results = run_all_at_once(workspace)
        failed = [(r.returncode, r.stderr[-600:]) for r in results if r.returncode != 0]
        assert not failed, f"round {round_ + 1}: {len(failed)} of {COMPANIES} failed: {failed}"
        assert_equals_sandbox(workspace)
        documents = sum(len(docs) for by_type in export(workspace).values() for docs in by_type.values())
        assert workspace.query("select count(*) from approvalmax.requests") == [(documents,)]
        workspace.admin("POST", "mutate", modify=COMPANIES * 2, add=COMPANIES)


def test_per_company_runs_at_once_into_one_postgres_dataset(many: Workspace, postgres_db: str) -> None:
    assert_rounds_exact(many.on_postgres(postgres_db))


def test_per_company_runs_at_once_into_one_duckdb_file_take_turns(many: Workspace) -> None:
    assert_rounds_exact(many)
