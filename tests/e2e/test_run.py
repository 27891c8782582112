"""The real CLI over real HTTP against the sandbox: full load, incremental load, partial failure."""

from __future__ import annotations

import json

from ..conftest import Workspace
from .truth import assert_documents_equal, assert_equals_sandbox, expected_counts, export, warehouse_counts


def document_requests(workspace: Workspace) -> list[dict]:
    log = workspace.admin("GET", "stats?log=1")["log"]
    return [e for e in log if "/xero/" in e["path"] or "/standalone/" in e["path"]]


def staging_rows(workspace: Workspace) -> dict[str, int]:
    """Rows left in dlt's staging copy of each merged table (DuckDB: emptied once a load is in)."""
    tables = workspace.query(
        "select table_name from information_schema.tables where table_schema = 'approvalmax_staging' "
        "and table_name not like '_dlt%'"
    )
    return {t: workspace.query(f'select count(*) from approvalmax_staging."{t}"')[0][0] for (t,) in tables}


def test_first_run_loads_exactly_the_sandbox_data(workspace: Workspace) -> None:
    result = workspace.cli("run", "--no-progress")
    assert result.returncode == 0, result.stderr + result.stdout
    truth = export(workspace)
    assert warehouse_counts(workspace) == expected_counts(truth)
    assert_documents_equal(workspace, truth)
    companies = workspace.query("select company_id, name from approvalmax.companies order by name")
    assert [c[1] for c in companies] == ["Sandbox Org 1", "Sandbox Org 2", "Sandbox Org 3"]
    users = workspace.query("select company_id, count(*) from approvalmax.user_profiles group by 1")
    assert {c: n for c, n in users} == {
        c.company_id: len(workspace.sandbox.dataset.users[c.company_id]) for c in workspace.sandbox.dataset.companies
    }
    # paging: bills need several pages of 100 per company
    bills_pages = [e for e in document_requests(workspace) if e["path"].endswith("/xero/bills")]
    assert len(bills_pages) == 3 * 2
    assert all(e["query"]["limit"] == "100" for e in bills_pages)
    # the summary names tables and request counts
    assert "xero_bills__line_items__tracking" in result.stdout
    assert "API requests" in result.stdout


def test_second_run_fetches_only_changes_and_updates_without_duplicates(workspace: Workspace) -> None:
    assert workspace.cli("run", "--no-progress").returncode == 0
    workspace.admin("POST", "reset-stats")
    changes = workspace.admin("POST", "mutate", modify=4, add=3)
    result = workspace.cli("run", "--no-progress")
    assert result.returncode == 0, result.stderr + result.stdout
    truth = export(workspace)
    assert warehouse_counts(workspace) == expected_counts(truth)
    assert_documents_equal(workspace, truth)
    # every document request of the second run carried the incremental filter
    requests = document_requests(workspace)
    assert requests and all("modifiedAtOrAfter" in e["query"] for e in requests)
    # both loads merged through staging, which holds nothing once they are in
    left = staging_rows(workspace)
    assert "xero_bills" in left and "xero_bills__line_items" in left
    assert sum(left.values()) == 0, left
    # one request per company and document type: nothing changed needs a second page
    assert len(requests) == 3 * 7
    served = sum(e["documents"] for e in requests)
    changed = len(set(changes["modified"])) + len(changes["added"])
    # what was served: the changed documents plus, per company and type, at most the few
    # documents modified inside the lookback window before the cursor (the filter is inclusive)
    assert changed <= served <= changed + 3 * 7 * 2
    # no token refresh: the access token from the first run was reused from the store
    assert workspace.admin("GET", "stats")["grants"].get("refresh_token", 0) == 0


def test_changed_document_loses_its_old_child_rows(workspace: Workspace) -> None:
    assert workspace.cli("run", "--no-progress").returncode == 0
    changes = workspace.admin("POST", "mutate", modify=6, add=0)
    assert workspace.cli("run", "--no-progress").returncode == 0
    truth = export(workspace)
    changed = set(changes["modified"])
    for company, by_type in truth.items():
        for doc in by_type["xero/bills"]:
            if doc["requestId"] not in changed:
                continue
            rows = workspace.query(
                "select count(*) from approvalmax.xero_bills__line_items l join approvalmax.xero_bills b "
                f"on l._dlt_root_id = b._dlt_id where b.request_id = '{doc['requestId']}'"
            )
            assert rows[0][0] == len(doc["lineItems"]), company


def test_disabled_company_fails_alone_with_exit_1(workspace: Workspace) -> None:
    disabled = workspace.sandbox.dataset.companies[1].company_id
    workspace.admin("POST", "config", disabled_companies=[disabled])
    result = workspace.cli("run", "--no-progress")
    assert result.returncode == 1, result.stderr + result.stdout
    assert f"FAILED company {disabled}" in result.stdout
    assert f"The {disabled} is disabled." in result.stdout
    assert "xero_bills" in result.stdout
    truth = export(workspace)
    loaded = {c for (c,) in workspace.query("select distinct company_id from approvalmax.xero_bills")}
    assert loaded == set(truth) - {disabled}
    # its cursors did not move, the others' did
    state = workspace.cli("state")
    assert state.returncode == 0, state.stderr
    assert disabled not in state.stdout
    # once enabled again, the next run loads it completely
    workspace.admin("POST", "config", disabled_companies=[])
    assert workspace.cli("run", "--no-progress").returncode == 0
    assert warehouse_counts(workspace) == expected_counts(truth)


def test_backfill_window_neither_reads_nor_moves_cursors(workspace: Workspace) -> None:
    assert workspace.cli("run", "--no-progress").returncode == 0
    before = workspace.cli("state").stdout
    workspace.admin("POST", "reset-stats")
    result = workspace.cli(
        "run", "--no-progress", "--since", "2025-03-01", "--until", "2025-04-01", "--resource", "xero_bills"
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "backfill" in result.stdout
    requests = document_requests(workspace)
    assert requests and all(e["query"]["modifiedAtOrAfter"].startswith("2025-03-01T00:00:00") for e in requests)
    assert all(e["path"].endswith("/xero/bills") for e in requests)
    assert workspace.cli("state").stdout == before


def test_company_and_resource_filters(workspace: Workspace) -> None:
    company = workspace.sandbox.dataset.companies[2].company_id
    result = workspace.cli("run", "--no-progress", "--company", company, "--resource", "xero_quotes")
    assert result.returncode == 0, result.stderr + result.stdout
    tables = {
        r[0]
        for r in workspace.query("select table_name from information_schema.tables where table_schema = 'approvalmax'")
    }
    assert "xero_quotes" in tables and "xero_bills" not in tables
    assert workspace.query("select distinct company_id from approvalmax.xero_quotes") == [(company,)]
    statuses = {r[0] for r in workspace.query("select distinct request_status from approvalmax.xero_quotes")}
    assert statuses <= {"draft", "onApproval", "approved", "rejected", "cancelled"}


def test_state_companies_and_ping_commands(workspace: Workspace) -> None:
    assert "no cursors yet" in workspace.cli("state").stdout
    assert workspace.cli("run", "--no-progress").returncode == 0
    state = workspace.cli("state")
    assert state.returncode == 0
    for company in workspace.sandbox.dataset.companies:
        assert company.company_id in state.stdout
    companies = workspace.cli("companies")
    assert companies.returncode == 0 and "Sandbox Org 3" in companies.stdout
    ping = workspace.cli("ping")
    assert ping.returncode == 0 and "3 organisation(s)" in ping.stdout


def test_token_file_is_private_and_holds_the_rotated_token(workspace: Workspace) -> None:
    assert workspace.cli("run", "--no-progress", "--resource", "companies").returncode == 0
    assert workspace.token_file.stat().st_mode & 0o777 == 0o600
    record = json.loads(workspace.token_file.read_text())
    seed = workspace.env["SOURCES__APPROVALMAX__CREDENTIALS__REFRESH_TOKEN"]
    assert record["refresh_token"] != seed and record["previous_refresh_token"] == seed


def root_load_ids(workspace: Workspace) -> set[str]:
    tables = [
        row[0]
        for row in workspace.query(
            "select table_name from information_schema.tables where table_schema = 'approvalmax' "
            "and table_type = 'BASE TABLE' and (table_name like 'xero\\_%' escape '\\' "
            "or table_name like 'standalone\\_%' escape '\\') and table_name not like '%\\_\\_%' escape '\\'"
        )
    ]
    return {
        row[0] for table in tables for row in workspace.query(f"select distinct _dlt_load_id from approvalmax.{table}")
    }


def test_quiet_run_loads_no_document_but_a_late_write_still_loads(workspace: Workspace) -> None:
    assert workspace.cli("run", "--no-progress").returncode == 0
    # Changes stamped a minute ago, then a run: their versions are now inside the next lookback.
    workspace.admin("POST", "mutate", modify=3, add=2, ago_seconds=60)
    assert workspace.cli("run", "--no-progress").returncode == 0
    loads = root_load_ids(workspace)
    workspace.admin("POST", "reset-stats")
    quiet = workspace.cli("run", "--no-progress")
    assert quiet.returncode == 0, quiet.stderr + quiet.stdout
    refetched = sum(e["documents"] for e in document_requests(workspace))
    assert refetched >= 5  # the lookback fetched the minute-old versions again ...
    assert root_load_ids(workspace) == loads  # ... and none was loaded again
    # A late write: stamped before the cursor (which is at least the last run's start) but
    # inside the lookback. Its version is new, so it loads.
    late = workspace.admin("POST", "mutate", modify=2, ago_seconds=120)
    result = workspace.cli("run", "--no-progress")
    assert result.returncode == 0, result.stderr + result.stdout
    assert_equals_sandbox(workspace)
    assert len(root_load_ids(workspace) - loads) == 1 and late["modified"]


def test_companies_and_user_profiles_load_only_when_they_changed(workspace: Workspace) -> None:
    dataset = workspace.sandbox.dataset
    assert workspace.cli("run", "--no-progress").returncode == 0

    def load_ids(table: str) -> set[str]:
        return {row[0] for row in workspace.query(f"select distinct _dlt_load_id from approvalmax.{table}")}

    def companies_loaded_by(table: str, load_id: str) -> set[str]:
        rows = workspace.query(f"select company_id from approvalmax.{table} where _dlt_load_id = '{load_id}'")
        return {row[0] for row in rows}

    first = {table: load_ids(table) for table in ("companies", "user_profiles")}
    quiet = workspace.cli("run", "--no-progress")
    assert quiet.returncode == 0, quiet.stderr + quiet.stdout
    assert {table: load_ids(table) for table in first} == first  # nothing merged again

    company = dataset.companies[1].company_id
    renamed = workspace.admin("POST", "mutate", users=2, company=company)["users"]
    assert len(renamed) == 2
    changed = workspace.cli("run", "--no-progress")
    assert changed.returncode == 0, changed.stderr + changed.stdout
    stored = workspace.query("select company_id, user_id, last_name, email from approvalmax.user_profiles")
    assert set(stored) == {
        (c.company_id, u["userId"], u["lastName"], u["email"])
        for c in dataset.companies
        for u in dataset.users[c.company_id]
    }
    (newest,) = load_ids("user_profiles") - first["user_profiles"]
    assert companies_loaded_by("user_profiles", newest) == {company}  # the one company whose list changed
    assert load_ids("companies") == first["companies"]

    # a reconcile loads every company's record and profiles again
    assert workspace.cli("run", "--no-progress", "--reconcile").returncode == 0
    everyone = {c.company_id for c in dataset.companies}
    assert companies_loaded_by("user_profiles", max(load_ids("user_profiles"))) == everyone
    assert companies_loaded_by("companies", max(load_ids("companies"))) == everyone

    # a backfill loads every company's profiles and neither reads nor moves their positions
    positions = workspace.query("select count(*) from approvalmax._approvalmax_cursors")
    backfill = workspace.cli("run", "--no-progress", "--since", "2025-03-01", "-r", "user_profiles")
    assert backfill.returncode == 0, backfill.stderr + backfill.stdout
    assert companies_loaded_by("user_profiles", max(load_ids("user_profiles"))) == everyone
    assert workspace.query("select count(*) from approvalmax._approvalmax_cursors") == positions
