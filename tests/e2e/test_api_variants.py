"""The pipeline across every variant of what is unverified about the API (sandbox/variants.py).

The sandbox shares our guesses, so each guess gets a knob per plausible answer, and each test
here ends in an exact warehouse or in the documented exit code and message.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ..conftest import Workspace
from .test_exit_codes import assert_one_line
from .test_run import document_requests, root_load_ids
from .truth import assert_equals_sandbox, export


def run_ok(ws: Workspace) -> str:
    result = ws.cli("run", "--no-progress")
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stderr


def midnight(value: str) -> datetime:
    return datetime.fromisoformat(value[:10]).replace(tzinfo=UTC)


@pytest.mark.parametrize("date_format", ["date", "datetime"])
def test_date_fields_fill_timestamp_columns_in_either_form(ws: Workspace, date_format: str) -> None:
    ws.admin("POST", "config", date_format=date_format)
    run_ok(ws)
    assert_equals_sandbox(ws)
    truth = export(ws)
    for table, path, field, column in [
        ("xero_bills", "xero/bills", "date", "date"),
        ("xero_bills", "xero/bills", "dueDate", "due_date"),
        ("xero_purchase_orders", "xero/purchase-orders", "deliveryDate", "delivery_date"),
        ("xero_quotes", "xero/quotes", "date", "date"),
    ]:
        loaded = dict(ws.query(f"select request_id, {column} from approvalmax.{table}"))
        expected = {d["requestId"]: midnight(d[field]) for by_type in truth.values() for d in by_type[path]}
        assert loaded == expected, (table, column)
    columns = {
        r[0] for r in ws.query("select column_name from information_schema.columns where table_name like 'xero%'")
    }
    assert not [c for c in columns if "__v_" in c]
    assert ws.query(
        "select count(*) from approvalmax.requests where document_type <> 'standalone_documents' "
        "and document_date is null"
    ) == [(0,)]


def test_a_disabled_connection_answering_403_exits_3_with_the_hint(ws: Workspace) -> None:
    assert ws.cli("ping").returncode == 0
    ws.admin("POST", "config", revoked_status=403)
    ws.admin("POST", "revoke", mode="disable")
    assert_one_line(ws.cli("run", "--no-progress"), 3, "(403)", "disabled or deleted", "Connections page")


@pytest.mark.parametrize("problem_style", ["aspnet", "plain"])
def test_a_refused_modified_filter_falls_back_to_whole_lists_and_stays_exact(ws: Workspace, problem_style: str) -> None:
    ws.admin("POST", "config", modified_filter="refused", problem_style=problem_style)
    first = run_ok(ws)
    assert "refused" not in first  # a full load sends no filter
    ws.admin("POST", "mutate", modify=4, add=3)
    ws.admin("POST", "reset-stats")
    second = run_ok(ws)
    assert_equals_sandbox(ws)
    warnings = [line for line in second.splitlines() if "refused the filter modifiedAtOrAfter" in line]
    assert len(warnings) == 1, second
    assert "The parameter 'modifiedAtOrAfter' is not supported." in warnings[0]  # the API's errorMessage
    requests = document_requests(ws)
    refused = [i for i, e in enumerate(requests) if e["status"] == 400]
    # refused at most once per request in flight (3 companies x concurrency 4); none sent with it after those
    assert 1 <= len(refused) <= 12
    later = requests[max(refused) + 1 :]
    assert later and not any("modifiedAtOrAfter" in e["query"] for e in later)
    # a quiet run reads whole lists again and loads nothing
    loads = root_load_ids(ws)
    run_ok(ws)
    assert root_load_ids(ws) == loads
    assert_equals_sandbox(ws)


def test_an_ignored_modified_filter_is_noticed_and_the_load_stays_exact(ws: Workspace) -> None:
    ws.admin("POST", "config", modified_filter="ignored")
    run_ok(ws)
    ws.admin("POST", "mutate", modify=4, add=3)
    second = run_ok(ws)
    assert_equals_sandbox(ws)
    warnings = [line for line in second.splitlines() if "ignored the filter modifiedAtOrAfter" in line]
    assert len(warnings) == 1, second
    loads = root_load_ids(ws)
    run_ok(ws)
    assert root_load_ids(ws) == loads


def test_unknown_fields_event_types_and_company_fields_pass_through(ws: Workspace) -> None:
    ws.admin("POST", "config", unknown_fields=True)
    run_ok(ws)
    assert_equals_sandbox(ws)
    bills = {
        r[0] for r in ws.query("select column_name from information_schema.columns where table_name = 'xero_bills'")
    }
    assert {"tax_rate_string", "reference", "delivery_address__city", "is_new_feature_flag"} <= bills
    events = ws.query("select count(*) from approvalmax.xero_bills__events where event_type = 'emailToPartnerSent'")
    assert events[0][0] > 0
    assert ws.query("select distinct time_zone from approvalmax.companies") == [("Pacific/Auckland",)]
    # the views take the new event type in their stride
    assert ws.query("select count(*) from approvalmax.request_events where event_type = 'emailToPartnerSent'")[0][0]


def test_a_document_type_a_company_lacks_is_reported_once_not_failed(ws: Workspace) -> None:
    lacking = ws.sandbox.dataset.companies[1].company_id
    ws.admin("POST", "config", missing_types=[f"{lacking}:xero/quotes"])
    first = ws.cli("run", "--no-progress")
    assert first.returncode == 0, first.stderr + first.stdout
    assert "FAILED" not in first.stdout
    lines = [line for line in first.stdout.splitlines() if line.startswith("not applicable")]
    assert len(lines) == 1 and lacking in lines[0] and "xero_quotes" in lines[0], first.stdout
    second = ws.cli("run", "--no-progress")
    assert second.returncode == 0 and "not applicable" not in second.stdout, second.stdout
    assert_equals_sandbox(ws)
    # once the type exists for it, the next run loads it
    ws.admin("POST", "config", missing_types=[])
    run_ok(ws)
    assert_equals_sandbox(ws)


def test_every_non_default_variant_at_once_full_and_incremental(ws: Workspace) -> None:
    lacking = ws.sandbox.dataset.companies[0].company_id
    ws.admin(
        "POST",
        "config",
        date_format="datetime",
        problem_style="plain",
        modified_filter="ignored",
        unknown_fields=True,
        missing_types=[f"{lacking}:xero/credit-notes"],
    )
    run_ok(ws)
    assert_equals_sandbox(ws)
    ws.admin("POST", "mutate", modify=5, add=4)
    run_ok(ws)
    assert_equals_sandbox(ws)


def test_a_configured_document_type_loads_into_its_own_table_and_the_views(ws: Workspace) -> None:
    ws.admin("POST", "config", type_aliases={"qbooks/bills": "xero/bills"})
    configured = '[{"table": "qbooks_bills", "path": "qbooks/bills"}]'
    result = ws.cli(
        "run", "--no-progress", "-r", "qbooks_bills", env={"SOURCES__APPROVALMAX__DOCUMENT_TYPES": configured}
    )
    assert result.returncode == 0, result.stderr + result.stdout
    truth = export(ws)
    expected = sum(len(by_type["xero/bills"]) for by_type in truth.values())
    assert ws.query("select count(*) from approvalmax.qbooks_bills") == [(expected,)]
    assert ws.query("select count(*) from approvalmax.requests where document_type = 'qbooks_bills'") == [(expected,)]
    lines = ws.query("select count(*) from approvalmax.qbooks_bills__line_items")[0][0]
    assert lines == sum(len(d["lineItems"]) for by_type in truth.values() for d in by_type["xero/bills"])
    unknown = ws.cli("run", "--no-progress", "-r", "qbooks_bills")
    assert unknown.returncode == 2 and "unknown resource 'qbooks_bills'" in unknown.stderr
