"""`--json`: exactly one JSON object on stdout, valid against its published schema, holding what
the tables hold; errors too."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ..conftest import REPO, Workspace

SCHEMAS = REPO / "pipelines" / "json_schemas"


def document(result: subprocess.CompletedProcess[str], schema: str) -> dict[str, Any]:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout  # one object, nothing else on stdout
    parsed = json.loads(lines[0])
    jsonschema.validate(parsed, json.loads((SCHEMAS / f"{schema}.schema.json").read_text()))
    return parsed  # type: ignore[no-any-return]


def test_run_json_holds_rows_per_company_and_table_counts_and_failures(ws: Workspace) -> None:
    victim = ws.sandbox.dataset.companies[0].company_id
    ws.admin("POST", "config", disabled_companies=[victim])
    failed = document(ws.process("run", "--no-progress", "--json"), "run")
    assert failed["exit_code"] == 1 and failed["status"] == "failed"
    assert failed["failures"] and {f["company_id"] for f in failed["failures"]} == {victim}
    ws.admin("POST", "config", disabled_companies=[])
    result = ws.process("run", "--no-progress", "--json")
    assert result.returncode == 0, result.stderr
    ok = document(result, "run")
    assert ok["exit_code"] == 0 and ok["status"] == "ok" and ok["failures"] == []
    assert ok["requests"] > 0 and ok["token_refreshes"] == 0  # the first run's token still serves
    loaded = {c["company_id"]: c["rows"] for c in ok["companies"]}
    assert set(loaded) == {c.company_id for c in ws.sandbox.dataset.companies}
    # the victim's documents arrive now, and the per-company rows add up to the table totals
    bills = ws.query(f"select count(*) from approvalmax.xero_bills where company_id = '{victim}'")[0][0]
    assert loaded[victim]["xero_bills"] == bills > 0
    for table, total in ok["tables"].items():
        assert total == sum(rows.get(table, 0) for rows in loaded.values()), table
    # where the time went: every phase a run with documents and a sweep reaches, in run order, and
    # the same figures on the run's run_history rows
    phases = ok["phases"]
    assert list(phases) == ["restore", "extract", "normalize", "load", "deletions", "views", "history", "run_history"]
    assert sum(phases.values()) <= ok["duration_seconds"] + phases["run_history"] + 0.01
    stored = ws.query(
        "select distinct extract_seconds, load_seconds, history_seconds from approvalmax.run_history "
        "where status = 'ok' and extract_seconds is not null"
    )
    assert (phases["extract"], phases["load"], phases["history"]) in [tuple(row) for row in stored]


def test_state_companies_and_doctor_json(ws: Workspace) -> None:
    assert ws.cli("run", "--no-progress").returncode == 0
    state = document(ws.cli("state", "--json"), "state")
    companies = {c.company_id for c in ws.sandbox.dataset.companies}
    assert {c["company_id"] for c in state["cursors"]} == companies
    assert {c["resource"] for c in state["cursors"]} >= {"xero_bills", "xero_purchase_orders"}
    listed = document(ws.cli("companies", "--json"), "companies")
    assert {c["company_id"] for c in listed["companies"]} == companies
    result = ws.cli("doctor", "--json")
    doctor = document(result, "doctor")
    assert doctor["exit_code"] == result.returncode
    assert doctor["requests"] <= doctor["request_budget"] and len(doctor["checks"]) >= 10


@pytest.mark.parametrize(
    ("args", "code"),
    [(["run", "--no-progress", "--json", "--company", "nope"], 2), (["state", "--json", "-d", "redshift"], 2)],
)
def test_errors_are_a_json_object_too(ws: Workspace, args: list[str], code: int, tmp_path: Path) -> None:
    result = ws.cli(*args)
    assert result.returncode == code
    error = document(result, "error")
    assert error["exit_code"] == code and error["command"] == args[0]
    assert error["error"] in result.stderr  # the same line as on stderr
