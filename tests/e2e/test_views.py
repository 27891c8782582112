"""The analyst views: exactly the planted governance cases, consistent totals, on DuckDB and PostgreSQL."""

from __future__ import annotations

from collections import defaultdict

import sqlglot

from approvalmax_pipeline.pipelines.warehouse.views import view_statements

from ..conftest import Loaded, Workspace
from .truth import export


def exceptions(workspace: Workspace) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for exception, request_id in workspace.query("select exception, request_id from approvalmax.governance_exceptions"):
        found[exception].add(request_id)
    return dict(found)


def planted(workspace: Workspace) -> dict[str, set[str]]:
    return {k: set(v) for k, v in workspace.admin("GET", "planted").items()}


def test_views_find_exactly_the_planted_cases(loaded: Loaded) -> None:
    workspace, result = loaded.workspace, loaded.run
    views = result.stdout.replace("\n", " ").split("views: ", 1)[1]
    assert views.startswith("company_currencies, requests, request_lines")
    assert exceptions(workspace) == planted(workspace)


def test_views_agree_with_the_documents(loaded: Loaded) -> None:
    workspace = loaded.workspace
    truth = export(workspace)
    documents = [d for by_type in truth.values() for docs in by_type.values() for d in docs]
    assert workspace.query("select count(*) from approvalmax.requests") == [(len(documents),)]
    lines = sum(len(d.get("lineItems") or []) for d in documents)
    assert workspace.query("select count(*) from approvalmax.request_lines") == [(lines,)]
    events = sum(len(d.get("events") or []) for d in documents)
    assert workspace.query("select count(*) from approvalmax.request_events") == [(events,)]
    # every human author has a name from user_profiles; system events are marked
    assert workspace.query(
        "select count(*) from approvalmax.request_events "
        "where not is_system and (author_name is null or author_name = '')"
    ) == [(0,)]
    assert workspace.query(
        "select count(*) from approvalmax.request_events where author_id like '00000000-%' and not is_system"
    ) == [(0,)]
    # tracking: one row per line and option, amounts from their lines
    tracking = sum(len(line.get("tracking") or []) for d in documents for line in d.get("lineItems") or [])
    assert workspace.query("select count(*) from approvalmax.request_line_tracking") == [(tracking,)]


def test_approval_cycles_count_rejections_resets_and_approvers(loaded: Loaded) -> None:
    workspace = loaded.workspace
    cases = planted(workspace)
    rows = workspace.query(
        "select request_id, rejections, resets, approvers, cycle_hours from approvalmax.approval_cycles"
    )
    by_id = {r[0]: r[1:] for r in rows}
    for request_id in cases["reject_then_reapprove"]:
        rejections, resets, approvers, hours = by_id[request_id]
        assert (rejections, resets, approvers) == (1, 1, 1) and hours > 0
    for request_id in cases["self_approval"]:
        assert by_id[request_id][:2] == (0, 0)
    assert workspace.query(
        "select count(*) from approvalmax.approval_cycles where request_status = 'approved' "
        "and (cycle_hours is null or cycle_hours < 0)"
    ) == [(0,)]


def test_views_on_postgres(workspace: Workspace, postgres_db: str) -> None:
    pg = workspace.on_postgres(postgres_db)
    result = pg.cli("run", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert exceptions(pg) == planted(pg)
    assert pg.cli("run", "--no-progress").returncode == 0  # views replaced on the next run
    assert exceptions(pg) == planted(pg)


def test_bigquery_view_sql_is_generated_for_bigquery() -> None:
    columns = {
        "companies": {"company_id": {}, "name": {}},
        "user_profiles": {"user_id": {}, "first_name": {}, "last_name": {}, "company_id": {}},
        "xero_bills": {"company_id": {}, "request_id": {}, "total": {}, "contact": {}, "created_at": {}},
        "xero_bills__line_items": {"amount": {}, "account_code": {}},
        "xero_bills__line_items__tracking": {"category_name": {}, "option_name": {}},
        "xero_bills__events": {"event_type": {}, "event_date": {}, "author_id": {}},
    }
    statements = [sql for _name, sql in view_statements("approvalmax", columns, "bigquery")]
    # no exchange_rate column: no company_currencies; no deleted_at or request_versions: no views of those
    assert [name for name, _sql in view_statements("approvalmax", columns, "bigquery")] == [
        "requests",
        "request_lines",
        "request_line_tracking",
        "request_events",
        "approval_cycles",
        "governance_exceptions",
        "spend_lines",
    ]
    text = " ".join(statements)
    assert "TIMESTAMP_DIFF(" in text and "DATE_DIFF(" not in text and "FILTER(" not in text
    for sql in statements:
        sqlglot.parse_one(sql, read="bigquery")  # valid BigQuery syntax, as far as sqlglot knows
