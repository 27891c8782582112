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
    documents = [row for row in stored if row[0] not in ("companies", "user_profiles")]
    assert sorted(documents) == sorted((c["resource"], c["company_id"], c["cursor"]) for c in before)
    # beside them, the digest of each company's record and profile list, as this version loaded them
    digests = [row for row in stored if row[0] in ("companies", "user_profiles")]
    assert len(digests) == 2 * len({c["company_id"] for c in before})
    assert all(row[2].startswith("sha256/1:") for row in digests)
    assert cursors(ws.cli("state", "--json")) == before

    # changes load from there, exactly
    ws.admin("POST", "mutate", modify=3, add=2)
    changed = ws.cli("run", "--no-progress")
    assert changed.returncode == 0, changed.stderr + changed.stdout
    assert_equals_sandbox(ws)
    after = cursors(ws.cli("state", "--json"))
    assert after != before and all(a["cursor"] >= b["cursor"] for a, b in zip(after, before, strict=True))


def execute(ws: Workspace, statement: str) -> None:
    """One write into the warehouse, its connection closed after (the CLI needs the DuckDB file)."""
    if ws.postgres_dsn is not None:
        import psycopg2

        connection = psycopg2.connect(ws.postgres_dsn)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()
        return
    import duckdb

    ws.release()
    with duckdb.connect(str(ws.duckdb_file)) as connection:
        connection.execute(statement)


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_a_run_that_moved_positions_deletes_the_rows_they_replace(
    ws: Workspace, destination: str, request: pytest.FixtureRequest
) -> None:
    """Three loads with changes leave one row per key; a row of a load not completed (newer than the
    newest completed one, as a killed run's that may yet complete) is kept and never read."""
    if destination == "postgres":
        ws = ws.on_postgres(request.getfixturevalue("postgres_db"))
    assert ws.cli("run", "--no-progress").returncode == 0
    key = ws.query(
        "select resource, company_id from approvalmax._approvalmax_cursors "
        "where resource not in ('companies', 'user_profiles') order by 1, 2 limit 1"
    )[0]
    pending = "9999999999.0000001"  # no _dlt_loads row: a load that never completed
    execute(
        ws,
        "insert into approvalmax._approvalmax_cursors (pipeline_name, resource, company_id, cursor_value, "
        f"not_applicable, _dlt_load_id) values ('approvalmax', '{key[0]}', '{key[1]}', "
        f"'2999-01-01T00:00:00.000000Z', false, '{pending}')",
    )
    for _ in range(2):
        ws.admin("POST", "mutate", modify=6, add=3)
        changed = ws.cli("run", "--no-progress")
        assert changed.returncode == 0, changed.stderr + changed.stdout
    assert_equals_sandbox(ws)
    rows, keys = ws.query(
        "select count(*), count(distinct resource || '/' || company_id) from approvalmax._approvalmax_cursors "
        f"where _dlt_load_id <> '{pending}'"
    )[0]
    # superseded rows gone: one per company and document type, companies and user_profiles
    assert rows == keys == 2 * (7 + 2)
    kept = ws.query(f"select count(*) from approvalmax._approvalmax_cursors where _dlt_load_id = '{pending}'")
    assert kept == [(1,)]
    stated = {(c["resource"], c["company_id"]): c["cursor"] for c in cursors(ws.cli("state", "--json"))}
    assert stated[key] < "2999"  # the incomplete load's row is not read
