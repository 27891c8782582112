"""`run_history`, `company_freshness` and `approvalmax status`, after a run with a failing company."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from ..conftest import REPO, Workspace

ROOTS = ("xero_bills", "xero_purchase_orders", "user_profiles")


def history(ws: Workspace) -> list[dict[str, Any]]:
    names = [
        "run_id", "started_at", "finished_at", "company_id", "resource", "status", "rows_loaded", "requests",
        "retries", "error", "cursor_before", "cursor_after",
    ]  # fmt: skip
    rows = ws.query(f"select {', '.join(names)} from approvalmax.run_history order by started_at, company_id, resource")
    return [dict(zip(names, row, strict=True)) for row in rows]


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_history_and_freshness_after_a_run_with_a_failing_company(
    ws: Workspace, destination: str, request: pytest.FixtureRequest
) -> None:
    if destination == "postgres":
        ws = ws.on_postgres(request.getfixturevalue("postgres_db"))
    victim = ws.sandbox.dataset.companies[0].company_id
    ws.admin("POST", "config", disabled_companies=[victim])
    assert ws.cli("run", "--no-progress").returncode == 1
    first = history(ws)
    companies = {c.company_id for c in ws.sandbox.dataset.companies}
    assert {r["company_id"] for r in first} == companies and len(first) == len(companies) * 9
    failed = [r for r in first if r["status"] == "failed"]
    assert failed and all(r["company_id"] == victim and "is disabled" in r["error"] for r in failed)
    assert all(r["error"] is None for r in first if r["status"] == "ok")
    for row in first:
        if row["status"] == "ok" and row["resource"] in ROOTS:
            loaded = ws.query(
                f"select count(*) from approvalmax.{row['resource']} where company_id = '{row['company_id']}'"
            )[0][0]
            assert row["rows_loaded"] == loaded > 0, row  # the first run loaded all there is
            assert row["requests"] >= 1 and row["retries"] == 0
        if row["resource"] == "xero_bills":
            assert row["cursor_before"] is None  # a full load
            assert (row["cursor_after"] is None) == (row["company_id"] == victim)
    # status: the victim's failed resources were never loaded, so they are stale, and their failures show
    status = ws.cli("status")
    assert status.returncode == 1, status.stdout + status.stderr
    assert f"FAILED company {victim} · xero_bills" in status.stdout
    assert f"STALE company {victim} · xero_bills · never loaded\n" in status.stdout

    ws.admin("POST", "config", disabled_companies=[])
    ws.admin("POST", "mutate", modify=3, add=2)
    assert ws.cli("run", "--no-progress").returncode == 0
    second = [r for r in history(ws) if r["run_id"] != first[0]["run_id"]]
    assert len(second) == len(first) and all(r["status"] == "ok" for r in second)
    after_first = {(r["company_id"], r["resource"]): r["cursor_after"] for r in first}
    for row in second:
        if row["resource"] == "xero_bills" and row["company_id"] != victim:
            assert row["cursor_before"] == after_first[(row["company_id"], "xero_bills")]  # continued from there
            assert row["cursor_after"] >= row["cursor_before"]
    fresh = ws.cli("status", "--json")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    document = json.loads(fresh.stdout)
    jsonschema.validate(document, json.loads((REPO / "pipelines/json_schemas/status.schema.json").read_text()))
    assert document["failures"] == [] and not any(r["stale"] for r in document["resources"])
    assert len(document["resources"]) == len(companies) * 9
    assert ws.cli("status", "--max-age", "0").returncode == 1  # everything is older than no time at all


def test_a_run_that_fails_outright_is_in_the_history(ws: Workspace) -> None:
    assert ws.cli("run", "--no-progress").returncode == 0
    ws.admin("POST", "revoke", mode="disable")
    assert ws.cli("run", "--no-progress").returncode == 3
    ws.admin("POST", "enable")
    last = history(ws)[-1]
    assert last["status"] == "failed" and last["company_id"] is None and "disabled or deleted" in last["error"]
    failing = ws.cli("status")
    assert failing.returncode == 0 and "FAILED company - · - · " in failing.stdout, failing.stdout
    # a later success of the pipeline clears the whole run's failure
    assert ws.cli("run", "--no-progress").returncode == 0
    cleared = ws.cli("status")
    assert cleared.returncode == 0 and "FAILED" not in cleared.stdout and "0 failure(s)" in cleared.stdout


def test_a_usage_error_writes_no_history(ws: Workspace) -> None:
    assert ws.cli("run", "--no-progress").returncode == 0
    before = history(ws)
    assert ws.cli("run", "--no-progress", "--company", "not-a-company").returncode == 2
    assert history(ws) == before


def test_status_without_a_warehouse_says_so(ws: Workspace) -> None:
    result = ws.cli("status")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: no warehouse at") and "approvalmax run" in result.stderr
