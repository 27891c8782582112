"""Positions in `_approvalmax_cursors`: a warehouse the previous version loaded (positions in dlt state)
keeps working, and after one run its dlt state holds none."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dlt.common.versioned_state import decompress_state

from ..conftest import REPO, Workspace
from .test_run import document_requests, root_load_ids
from .truth import assert_equals_sandbox

POSITIONS_MODULE = "sources/approvalmax/positions.py"
PREVIOUS_RELEASE = "f0f8e28aa255cb724f6a86e93b0376529a1bc121"  # v0.1.0


def git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True)


@pytest.fixture(scope="module")
def previous_version(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The previous release's code, v0.1.0, which users upgrade from (by its commit when a clone
    has no tags)."""
    ref = PREVIOUS_RELEASE if git("rev-parse", "--verify", "-q", "v0.1.0").returncode else "v0.1.0"
    archive = git("archive", ref)
    if archive.returncode != 0:
        pytest.skip(f"this clone does not have {ref} (a shallow clone): fetch more history")
    folder = tmp_path_factory.mktemp("previous")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    assert not (folder / POSITIONS_MODULE).exists()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def run_previous(workspace: Workspace, code: Path, *args: str) -> subprocess.CompletedProcess[str]:
    workspace.release()
    return subprocess.run(
        [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", *args],
        cwd=workspace.root,
        env={**workspace.env, "PYTHONPATH": str(code)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def newest_source_state(workspace: Workspace) -> dict[str, Any]:
    (state,) = workspace.query(
        "select s.state from approvalmax._dlt_pipeline_state s join approvalmax._dlt_loads l "
        "on l.load_id = s._dlt_load_id where s.pipeline_name = 'approvalmax' and l.status = 0 "
        "order by l.load_id desc limit 1"
    )[0]
    resources: dict[str, Any] = decompress_state(state)["sources"]["approvalmax"].get("resources", {})
    return resources


def cursors(result: subprocess.CompletedProcess[str]) -> list[dict[str, str]]:
    assert result.returncode == 0, result.stderr + result.stdout
    found: list[dict[str, str]] = json.loads(result.stdout)["cursors"]
    return found


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_a_warehouse_of_the_previous_version_keeps_its_cursors_and_moves_them_into_the_table(
    ws: Workspace, previous_version: Path, destination: str, request: pytest.FixtureRequest
) -> None:
    if destination == "postgres":
        ws = ws.on_postgres(request.getfixturevalue("postgres_db"))
    loaded = run_previous(ws, previous_version, "run", "--no-progress")
    assert loaded.returncode == 0, loaded.stderr + loaded.stdout
    before = cursors(run_previous(ws, previous_version, "state", "--json"))
    assert len(before) == 2 * 7
    assert all(state.get("cursors") for state in newest_source_state(ws).values())

    # this version reads them from dlt state: the same cursors, and a quiet run loads nothing
    assert cursors(ws.cli("state", "--json")) == before
    loads = root_load_ids(ws)
    ws.admin("POST", "reset-stats")
    quiet = ws.cli("run", "--no-progress")
    assert quiet.returncode == 0, quiet.stderr + quiet.stdout
    # its run_history rows join the previous version's in the same table (nothing refused, no warning)
    assert "could not write run_history" not in quiet.stderr, quiet.stderr
    runs = ws.query("select count(distinct run_id) from approvalmax.run_history")
    assert runs == [(2,)]
    requests = document_requests(ws)
    assert len(requests) == 2 * 7 and all("modifiedAtOrAfter" in e["query"] for e in requests)
    assert root_load_ids(ws) == loads

    # ... and moved them into the table: dlt state holds none, the table every one
    assert not any(state for state in newest_source_state(ws).values())
    stored = ws.query("select resource, company_id, cursor_value from approvalmax._approvalmax_cursors")
    assert sorted(stored) == sorted((c["resource"], c["company_id"], c["cursor"]) for c in before)
    assert cursors(ws.cli("state", "--json")) == before

    # changes load from there, exactly
    ws.admin("POST", "mutate", modify=3, add=2)
    changed = ws.cli("run", "--no-progress")
    assert changed.returncode == 0, changed.stderr + changed.stdout
    assert_equals_sandbox(ws)
    after = cursors(ws.cli("state", "--json"))
    assert after != before and all(a["cursor"] >= b["cursor"] for a, b in zip(after, before, strict=True))
