"""Sweeps against the sandbox: documents deleted in ApprovalMax get `deleted_at` (or are removed),
changes that did not move `modifiedAt` are loaded, and an incomplete listing marks nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from approvalmax_pipeline.sources.clock import SYSTEM_CLOCK

from ..conftest import Workspace
from .truth import assert_equals_sandbox, assert_no_orphans_or_duplicates, export

ROOTS = (
    "xero_bills",
    "xero_purchase_orders",
    "xero_credit_notes",
    "xero_sales_invoices",
    "xero_batch_payments",
    "xero_quotes",
    "standalone_documents",
)


def run_json(workspace: Workspace, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = workspace.cli("run", "--no-progress", "--json", *args, env=env)
    assert result.returncode in (0, 1), result.stderr + result.stdout
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def marked(workspace: Workspace) -> set[str]:
    """Request ids with deleted_at, over every document table."""
    return {
        row[0]
        for table in ROOTS
        for row in workspace.query(f"select request_id from approvalmax.{table} where deleted_at is not null")
    }


def deleted_in(document: dict[str, Any]) -> int:
    return sum(entry["documents"] for entry in document["sweep"]["deleted"])


@pytest.mark.parametrize("arrow", ["true", "false"])
def test_reconcile_marks_exactly_the_deleted_documents_and_loads_silent_changes(ws: Workspace, arrow: str) -> None:
    env = {"SOURCES__APPROVALMAX__ARROW_TABLES": arrow}
    first = run_json(ws, env=env)
    assert len(first["sweep"]["lists"]) == 2 * 7  # a first load lists everything: it is a sweep
    assert first["sweep"]["not_listed"] == 0
    changes = ws.admin("POST", "mutate", delete=3, silent=2)
    assert len(changes["deleted"]) == 6 and len(changes["silent"]) == 4

    quiet = run_json(ws, env=env)
    assert quiet["sweep"]["lists"] == [] and marked(ws) == set()  # the cursor alone cannot see either
    before = dict(ws.query("select request_id, total from approvalmax.requests"))
    silent = [rid for rid in changes["silent"] if rid not in changes["deleted"] and before.get(rid) is not None]
    assert silent

    swept = run_json(ws, "--reconcile", env=env)
    assert len(swept["sweep"]["lists"]) == 2 * 7
    assert swept["sweep"]["requests"] >= 2 * 7
    assert deleted_in(swept) == 6 and swept["sweep"]["mode"] == "soft"
    assert marked(ws) == set(changes["deleted"])
    assert_equals_sandbox(ws)  # live rows equal the sandbox, children included
    totals = dict(ws.query("select request_id, total from approvalmax.requests"))
    assert all(totals[rid] == before[rid] + 1.0 for rid in silent)  # the silent changes, loaded by the sweep

    in_views = {row[0] for row in ws.query("select request_id from approvalmax.requests")}
    assert in_views.isdisjoint(changes["deleted"])
    lines = {row[0] for row in ws.query("select request_id from approvalmax.request_lines")}
    assert lines.isdisjoint(changes["deleted"])
    listed = ws.query("select request_id, deleted_at from approvalmax.deleted_requests")
    assert {row[0] for row in listed} == set(changes["deleted"]) and all(row[1] is not None for row in listed)

    stamps = dict(listed)
    again = run_json(ws, "--reconcile", env=env)
    assert deleted_in(again) == 0 and again["sweep"]["not_listed"] == 0
    assert dict(ws.query("select request_id, deleted_at from approvalmax.deleted_requests")) == stamps


def test_hard_deletes_remove_the_documents_and_their_child_rows(ws: Workspace) -> None:
    env = {"SOURCES__APPROVALMAX__HARD_DELETES": "true"}
    assert ws.cli("run", "--no-progress", env=env).returncode == 0
    changes = ws.admin("POST", "mutate", delete=4)
    swept = run_json(ws, "--reconcile", env=env)
    assert deleted_in(swept) == 8 and swept["sweep"]["mode"] == "hard"
    present = {row[0] for table in ROOTS for row in ws.query(f"select request_id from approvalmax.{table}")}
    assert present.isdisjoint(changes["deleted"])
    assert_equals_sandbox(ws)  # every table's rows, children included, equal the sandbox's
    assert ws.query("select count(*) from approvalmax.deleted_requests") == [(0,)]


def test_a_listing_broken_part_way_marks_nothing(workspace: Workspace) -> None:
    assert workspace.cli("run", "--no-progress").returncode == 0
    changes = workspace.admin("POST", "mutate", delete=6)
    truth = export(workspace)
    # lists of more than one page (100 documents) break after their first
    workspace.admin("POST", "config", break_listing_after=1)
    broken = run_json(workspace, "--reconcile")
    assert broken["exit_code"] == 1 and broken["failures"]
    failed = {(f["company_id"], f["resource"]) for f in broken["failures"]}
    rows = {
        (company, table): {
            row[0]
            for row in workspace.query(f"select request_id from approvalmax.{table} where company_id = '{company}'")
        }
        for company in truth
        for table in ROOTS
    }
    for company, table in failed:
        assert not rows[(company, table)] & marked(workspace), f"{table} of {company} was marked from a broken list"
    # only lists that came whole were checked, and what they marked is exactly their deleted documents
    whole = {(entry["company_id"], entry["resource"]) for entry in broken["sweep"]["lists"]}
    assert whole and whole.isdisjoint(failed)
    expected = {rid for key in whole for rid in rows[key] if rid in changes["deleted"]}
    assert marked(workspace) == expected

    workspace.admin("POST", "config", break_listing_after=0)
    mended = run_json(workspace, "--reconcile")
    assert mended["exit_code"] == 0
    assert marked(workspace) == set(changes["deleted"])
    assert_equals_sandbox(workspace)


def test_a_check_the_api_cannot_answer_is_done_by_the_next_run(ws: Workspace) -> None:
    assert ws.cli("run", "--no-progress").returncode == 0
    changes = ws.admin("POST", "mutate", delete=2)
    ws.admin("POST", "config", single_document_status=400)
    refused = run_json(ws, "--reconcile")
    assert refused["sweep"]["unanswered"] == 4 and deleted_in(refused) == 0 and marked(ws) == set()
    ws.admin("POST", "config", single_document_status=0)
    later = run_json(ws)  # no sweep due: the unfinished check alone
    assert later["sweep"]["lists"] == [] and deleted_in(later) == 4
    assert marked(ws) == set(changes["deleted"])
    assert run_json(ws)["sweep"]["checked"] == 0  # checked once, then no more queries


def test_a_document_the_lists_leave_out_but_its_id_still_serves_stays_live(ws: Workspace) -> None:
    assert ws.cli("run", "--no-progress").returncode == 0
    (hidden,) = ws.query("select request_id from approvalmax.xero_bills order by request_id limit 1")[0]
    ws.admin("POST", "config", hidden_from_lists=[hidden])
    swept = run_json(ws, "--reconcile")
    assert swept["sweep"]["not_listed"] == 1 and swept["sweep"]["still_served"] == 1
    assert deleted_in(swept) == 0 and marked(ws) == set()
    ws.admin("POST", "reset-stats")
    assert run_json(ws)["sweep"]["checked"] == 0  # the sweep counts as checked: no GET by id again
    by_id = [e for e in ws.admin("GET", "stats?log=1")["log"] if e["path"].endswith(hidden)]
    assert by_id == []


def test_a_sweep_comes_by_itself_when_the_last_is_older_than_reconcile_every_hours(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    hourly = {"SOURCES__APPROVALMAX__RECONCILE_EVERY_HOURS": "1"}
    assert ws.cli("run", "--no-progress", env=hourly).returncode == 0
    changes = ws.admin("POST", "mutate", delete=1)
    never = run_json(ws, env={"SOURCES__APPROVALMAX__RECONCILE_EVERY_HOURS": "0"})
    assert never["sweep"]["lists"] == []
    assert run_json(ws, env=hourly)["sweep"]["lists"] == []  # the last sweep is minutes old
    now = SYSTEM_CLOCK.now
    monkeypatch.setattr(SYSTEM_CLOCK, "now", lambda: now() + timedelta(hours=1, minutes=1))  # the runs' clock seam
    due = run_json(ws, env=hourly)
    assert len(due["sweep"]["lists"]) == 2 * 7 and marked(ws) == set(changes["deleted"])
    monkeypatch.setattr(SYSTEM_CLOCK, "now", lambda: now() + timedelta(hours=2, minutes=2))
    result = ws.cli("run", "--no-progress", env=hourly)
    assert "sweep: " in result.stdout and "marked deleted" in result.stdout  # the summary shows its cost


def test_reconcile_on_postgres(ws: Workspace, postgres_db: str) -> None:
    pg = ws.on_postgres(postgres_db)
    assert pg.cli("run", "--no-progress").returncode == 0
    changes = pg.admin("POST", "mutate", delete=2, silent=1)
    swept = run_json(pg, "--reconcile")
    assert deleted_in(swept) == 4
    assert marked(pg) == set(changes["deleted"])
    assert_equals_sandbox(pg)
    assert_no_orphans_or_duplicates(pg)
    assert {row[0] for row in pg.query("select request_id from approvalmax.deleted_requests")} == set(
        changes["deleted"]
    )
