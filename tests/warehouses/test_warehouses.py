"""Everything a run does, on each cloud warehouse this machine can stand up locally: full and
incremental loads, a backfill, a sweep with deletions, request_versions and request_history, every
analyst view executed, run_history, `status`, `state` from a wiped working folder, and per-company
runs at once under the dataset lock. `make test-warehouses` runs it and prints one line a warehouse
(WAREHOUSE_REPORT names the file the lines go to)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from approvalmax_pipeline.pipelines.warehouse.views import VIEW_NAMES

from ..conftest import Workspace
from ..e2e.test_parallel_loads import run_all_at_once
from ..e2e.test_reconcile import marked, run_json
from ..e2e.test_views import exceptions, planted
from ..e2e.truth import assert_equals_sandbox, export
from ..emulators.bigquery_emulator import running_bigquery
from ..emulators.snowflake_emulator import NotInstalled, running_snowflake

DATASET = "approvalmax"
# google-cloud-bigquery says so on every query without the Storage API package, which it does not need
pytestmark = pytest.mark.filterwarnings("ignore:Cannot create BigQuery Storage client")


def report(line: str) -> None:
    """One line for `make test-warehouses` to print."""
    if path := os.environ.get("WAREHOUSE_REPORT"):
        with open(path, "a") as out:
            out.write(line + "\n")


@pytest.fixture
def snowflake(ws: Workspace, tmp_path: Path) -> Iterator[Workspace]:
    """The small sandbox's workspace loading into a database of its own on fakesnow's server."""
    try:
        with running_snowflake(tmp_path) as emulator:
            database = "ANALYTICS"
            settings = {"DESTINATION__SNOWFLAKE__CREDENTIALS": emulator.credentials(database)}
            yield ws.on_warehouse("snowflake", settings, lambda: emulator.connect(database))
    except NotInstalled as exc:
        report(f"snowflake: not run: {exc}")
        pytest.skip(str(exc))


@pytest.fixture
def bigquery(ws: Workspace, tmp_path: Path) -> Iterator[Workspace]:
    """The small sandbox's workspace loading into bqemulator through google-cloud-bigquery."""
    try:
        with running_bigquery(tmp_path) as emulator:
            yield ws.on_warehouse("bigquery", emulator.settings, emulator.connect)
    except NotInstalled as exc:
        report(f"bigquery: not run: {exc}")
        pytest.skip(str(exc))


def documents(workspace: Workspace) -> int:
    return sum(len(docs) for by_type in export(workspace).values() for docs in by_type.values())


def views_ok(workspace: Workspace) -> int:
    """Every analyst view the run made, executed; returns how many."""
    made = {
        str(row[0]).lower()
        for row in workspace.query(
            f"select table_name from information_schema.views where lower(table_schema) = '{DATASET}'"
        )
    }
    expected = set(VIEW_NAMES) | {"company_freshness"}
    assert expected <= made, f"views missing: {sorted(expected - made)}"
    for name in sorted(expected):
        rows = workspace.query(f"select * from {DATASET}.{name}")
        assert name in {"deleted_requests", "company_currencies"} or rows, f"view {name} is empty"
    return len(expected)


def everything_a_run_does(wh: Workspace, name: str) -> None:
    full = wh.cli("run", "--no-progress")
    assert full.returncode == 0, full.stderr + full.stdout
    assert f"into {name}" in full.stdout
    assert_equals_sandbox(wh)
    assert exceptions(wh) == planted(wh)

    # incremental, from a wiped working folder: the cursors come from the warehouse
    wh.admin("POST", "mutate", modify=5, add=4)
    fresh = {"DLT_DATA_DIR": str(wh.root / "another-worker")}
    incremental = wh.cli("run", "--no-progress", env=fresh)
    assert incremental.returncode == 0, incremental.stderr + incremental.stdout
    assert_equals_sandbox(wh)

    backfill = wh.cli("run", "--no-progress", "--since", "2025-03-01", "--until", "2025-04-01")
    assert backfill.returncode == 0 and "backfill" in backfill.stdout, backfill.stderr + backfill.stdout
    assert_equals_sandbox(wh)

    changes = wh.admin("POST", "mutate", delete=2, silent=1)
    swept = run_json(wh, "--reconcile")
    assert swept["status"] == "ok", swept
    assert marked(wh) == set(changes["deleted"])
    assert {row[0] for row in wh.query(f"select request_id from {DATASET}.deleted_requests")} == set(changes["deleted"])
    assert_equals_sandbox(wh)

    # every version served is kept once; request_history reads them
    versions = wh.query(f"select count(*), count(distinct request_id) from {DATASET}.request_versions")[0]
    assert versions[1] == documents(wh) + len(changes["deleted"]) and versions[0] > versions[1], versions
    history = wh.query(f"select count(*) from {DATASET}.request_history")
    assert history == [(versions[0],)], (history, versions)

    runs = wh.query(f"select count(*) from {DATASET}.run_history where status = 'ok'")
    assert runs[0][0] > 0, runs
    status = wh.cli("status", "--json")
    assert status.returncode == 0, status.stderr + status.stdout
    state = wh.cli("state", "--json", env={"DLT_DATA_DIR": str(wh.root / "wiped")})
    assert state.returncode == 0, state.stderr + state.stdout
    companies = {c.company_id for c in wh.sandbox.dataset.companies}
    assert companies <= set(json.dumps(json.loads(state.stdout)).split('"')), state.stdout

    # one pipeline a company, all at once, taking turns at the dataset lock
    wh.admin("POST", "mutate", modify=4, add=2)
    results = run_all_at_once(wh)
    failed = [(r.returncode, r.stderr[-600:]) for r in results if r.returncode != 0]
    assert not failed, failed
    assert_equals_sandbox(wh)
    views = views_ok(wh)
    report(f"{name}: {documents(wh)} documents exact, views {views} ok")


def reported(wh: Workspace, name: str) -> None:
    """everything_a_run_does, its failure also one line of the report."""
    try:
        everything_a_run_does(wh, name)
    except BaseException as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        report(f"{name}: failed: {first[:200]}")
        raise


def test_everything_a_run_does_on_snowflake(snowflake: Workspace) -> None:
    reported(snowflake, "snowflake")


def test_everything_a_run_does_on_bigquery(bigquery: Workspace) -> None:
    reported(bigquery, "bigquery")
