"""The analyst views' SQL on tiny hand-made tables in an in-memory DuckDB: one rule per test."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from approvalmax_pipeline.pipelines.warehouse.views import SYSTEM_USER, VIEW_NAMES, view_statements

DS = "approvalmax"
SUBMITTED, APPROVED, REJECTED = "requesterSubmitted", "approverApprovedRequestApproved", "approverRejected"

# table -> column -> dlt type: what dlt's schema would say of these tables
TABLES: dict[str, dict[str, str]] = {
    "companies": {"company_id": "text", "name": "text"},
    "user_profiles": {"company_id": "text", "user_id": "text", "first_name": "text", "last_name": "text"},
    "xero_bills": {
        "company_id": "text",
        "request_id": "text",
        "_dlt_id": "text",
        "document_number": "text",
        "friendly_name": "text",
        "contact": "text",
        "total": "double",
        "currency_code": "text",
        "request_status": "text",
        "date": "timestamp",
        "created_at": "timestamp",
        "modified_at": "timestamp",
        "decision_date": "timestamp",
        "deleted_at": "timestamp",
        "exchange_rate": "double",
    },
    "xero_bills__line_items": {
        "_dlt_id": "text",
        "_dlt_root_id": "text",
        "_dlt_parent_id": "text",
        "_dlt_list_idx": "bigint",
        "description": "text",
        "account_code": "text",
        "quantity": "double",
        "item_price": "double",
        "amount": "double",
    },
    "xero_bills__line_items__tracking": {
        "_dlt_id": "text",
        "_dlt_root_id": "text",
        "_dlt_parent_id": "text",
        "_dlt_list_idx": "bigint",
        "category_name": "text",
        "option_name": "text",
    },
    "xero_bills__events": {
        "_dlt_id": "text",
        "_dlt_root_id": "text",
        "_dlt_parent_id": "text",
        "_dlt_list_idx": "bigint",
        "event_type": "text",
        "event_date": "timestamp",
        "author_id": "text",
        "is_system": "bool",
        "comment": "text",
    },
    "request_versions": {
        "document_type": "text",
        "company_id": "text",
        "request_id": "text",
        "modified_at": "timestamp",
        "request_status": "text",
        "total": "double",
        "currency_code": "text",
        "line_items_digest": "text",
        "first_seen_at": "timestamp",
    },
    # a configured type without money fields or line items
    "standalone_documents": {
        "company_id": "text",
        "request_id": "text",
        "_dlt_id": "text",
        "document_name": "text",
        "friendly_name": "text",
        "request_status": "text",
        "created_at": "timestamp",
        "modified_at": "timestamp",
        "decision_date": "timestamp",
    },
}
# purchase orders and sales invoices: the bills' columns (POs also `billed`), and line items
TABLES["xero_purchase_orders"] = {**TABLES["xero_bills"], "billed": "bool"}
TABLES["xero_sales_invoices"] = dict(TABLES["xero_bills"])
for _type in ("xero_purchase_orders", "xero_sales_invoices"):
    TABLES[f"{_type}__line_items"] = dict(TABLES["xero_bills__line_items"])
SQL = {"text": "VARCHAR", "double": "DOUBLE", "bigint": "BIGINT", "bool": "BOOLEAN", "timestamp": "TIMESTAMPTZ"}


def bill(request_id: str, **values: Any) -> dict[str, Any]:
    row = {
        "company_id": "c1",
        "request_id": request_id,
        "_dlt_id": f"d-{request_id}",
        "document_number": f"BILL-{request_id}",
        "contact": "Acme",
        "total": 100.0,
        "currency_code": "NZD",
        "request_status": "approved",
        "created_at": "2025-01-01 00:00:00+00",
    }
    return {**row, **values}


def event(request_id: str, index: int, event_type: str, author: str, at: str, **values: Any) -> dict[str, Any]:
    return {
        "_dlt_id": f"e-{request_id}-{index}",
        "_dlt_root_id": f"d-{request_id}",
        "_dlt_parent_id": f"d-{request_id}",
        "_dlt_list_idx": index,
        "event_type": event_type,
        "event_date": at,
        "author_id": author,
        **values,
    }


def warehouse(rows: dict[str, list[dict[str, Any]]]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding TABLES with `rows`, and the views created over them."""
    db = duckdb.connect()
    db.execute(f"CREATE SCHEMA {DS}")
    for table, columns in TABLES.items():
        db.execute(f"CREATE TABLE {DS}.{table} ({', '.join(f'{c} {SQL[k]}' for c, k in columns.items())})")
        for row in rows.get(table, []):
            names = list(row)
            db.execute(
                f"INSERT INTO {DS}.{table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [row[n] for n in names],
            )
    columns = {table: {c: {"data_type": k} for c, k in cols.items()} for table, cols in TABLES.items()}
    for _name, statement in view_statements(DS, columns, "duckdb"):
        db.execute(statement)
    return db


def rows_of(db: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return db.execute(sql).fetchall()


BASE = {
    "companies": [{"company_id": "c1", "name": "Kiwi Ltd"}],
    "user_profiles": [
        {"company_id": "c1", "user_id": "u1", "first_name": "Ana", "last_name": "Lee"},
        {"company_id": "c1", "user_id": "u2", "first_name": "Ben", "last_name": None},
    ],
}


def test_requests_unions_every_document_table_with_the_company_name() -> None:
    db = warehouse(
        {
            **BASE,
            "xero_bills": [bill("b1")],
            "standalone_documents": [
                {
                    "company_id": "c1",
                    "request_id": "s1",
                    "_dlt_id": "d-s1",
                    "document_name": "Trip",
                    "friendly_name": "SA-1",
                }
            ],
        }
    )
    got = rows_of(
        db,
        f"SELECT document_type, request_id, document_number, document_name, total, company_name "
        f"FROM {DS}.requests ORDER BY request_id",
    )
    assert got == [
        ("xero_bills", "b1", "BILL-b1", None, 100.0, "Kiwi Ltd"),
        ("standalone_documents", "s1", "SA-1", "Trip", None, "Kiwi Ltd"),  # friendly name; no total column: NULL
    ]


def test_a_document_found_deleted_leaves_every_view_and_is_listed_in_deleted_requests() -> None:
    gone = "2025-02-01 00:00:00+00"
    line = {"_dlt_parent_id": "x", "_dlt_list_idx": 0, "amount": 5.0}
    tracking = {"_dlt_list_idx": 0, "category_name": "Team", "option_name": "A"}
    db = warehouse(
        {
            **BASE,
            "xero_bills": [bill("live"), bill("gone", deleted_at=gone)],
            "xero_bills__line_items": [
                {**line, "_dlt_id": f"l-{r}", "_dlt_root_id": f"d-{r}"} for r in ("live", "gone")
            ],
            "xero_bills__line_items__tracking": [
                {**tracking, "_dlt_id": f"t-{r}", "_dlt_root_id": f"d-{r}", "_dlt_parent_id": f"l-{r}"}
                for r in ("live", "gone")
            ],
            "xero_bills__events": [event(r, 0, SUBMITTED, "u1", "2025-01-01 00:00:00+00") for r in ("live", "gone")],
        }
    )
    for view in ("requests", "request_lines", "request_line_tracking", "request_events", "approval_cycles"):
        assert rows_of(db, f"SELECT request_id FROM {DS}.{view}") == [("live",)], view
    deleted = rows_of(
        db, f"SELECT document_type, request_id, total, CAST(deleted_at AS VARCHAR) FROM {DS}.deleted_requests"
    )
    assert deleted == [("xero_bills", "gone", 100.0, "2025-02-01 00:00:00+00")]


def test_request_history_chains_versions_and_a_deletion_closes_the_last() -> None:
    def version(request_id: str, at: str, status: str, seen: str = "2025-03-01 00:00:00+00") -> dict[str, Any]:
        return {
            "document_type": "xero_bills",
            "company_id": "c1",
            "request_id": request_id,
            "modified_at": at,
            "request_status": status,
            "total": 100.0,
            "currency_code": "NZD",
            "first_seen_at": seen,
        }

    db = warehouse(
        {
            "xero_bills": [bill("kept"), bill("gone", deleted_at="2025-02-10 00:00:00+00")],
            "request_versions": [
                version("kept", "2025-01-01 00:00:00+00", "onApproval"),
                version("kept", "2025-01-05 00:00:00+00", "approved"),
                version("kept", "2025-01-05 00:00:00+00", "approved", seen="2025-03-02 00:00:00+00"),  # a copy
                version("gone", "2025-01-02 00:00:00+00", "draft"),
            ],
        }
    )
    got = rows_of(
        db,
        "SELECT request_id, CAST(valid_from AS VARCHAR), CAST(valid_to AS VARCHAR), is_current, request_status "
        f"FROM {DS}.request_history ORDER BY request_id, valid_from",
    )
    assert got == [
        ("gone", "2025-01-02 00:00:00+00", "2025-02-10 00:00:00+00", False, "draft"),
        ("kept", "2025-01-01 00:00:00+00", "2025-01-05 00:00:00+00", False, "onApproval"),
        ("kept", "2025-01-05 00:00:00+00", None, True, "approved"),
    ]


def line(request_id: str, amount: float) -> dict[str, Any]:
    return {
        "_dlt_id": f"l-{request_id}",
        "_dlt_root_id": f"d-{request_id}",
        "_dlt_parent_id": f"d-{request_id}",
        "_dlt_list_idx": 0,
        "amount": amount,
        "account_code": "400",
    }


def test_spend_is_approved_bills_and_approved_purchase_orders_not_yet_billed() -> None:
    db = warehouse(
        {
            "xero_bills": [
                bill("bill-approved"),
                bill("bill-rejected", request_status="rejected"),
                bill("bill-draft", request_status="draft"),
                bill("bill-deleted", deleted_at="2025-02-01 00:00:00+00"),
            ],
            "xero_bills__line_items": [
                line(r, 10.0) for r in ("bill-approved", "bill-rejected", "bill-draft", "bill-deleted")
            ],
            "xero_purchase_orders": [
                bill("po-open", billed=False),
                bill("po-billed", billed=True),  # counted by its bill
                bill("po-pending", request_status="onApproval", billed=False),
            ],
            "xero_purchase_orders__line_items": [line(r, 20.0) for r in ("po-open", "po-billed", "po-pending")],
            "xero_sales_invoices": [bill("invoice")],
            "xero_sales_invoices__line_items": [line("invoice", 30.0)],
        }
    )
    got = rows_of(db, f"SELECT request_id, amount, currency_code FROM {DS}.spend_lines ORDER BY request_id")
    assert got == [("bill-approved", 10.0, "NZD"), ("po-open", 20.0, "NZD")]


def test_amounts_in_base_currency_divide_by_xeros_rate_of_units_per_base_unit() -> None:
    # A company keeping its books in NZD; a USD bill of 60 at 0.6 USD per NZD is 100 NZD.
    db = warehouse(
        {
            **BASE,
            "xero_bills": [
                bill("nzd-1", exchange_rate=1.0),
                bill("nzd-2", exchange_rate=1.0),
                bill("usd", currency_code="USD", total=60.0, exchange_rate=0.6),
                bill("aud-1", currency_code="AUD", exchange_rate=1.0, company_id="c2"),  # c2 keeps AUD
                bill("no-rate", currency_code="GBP", total=5.0, exchange_rate=None),
            ],
            "xero_bills__line_items": [line("usd", 30.0), line("nzd-1", 7.0)],
        }
    )
    assert rows_of(db, f"SELECT company_id, base_currency FROM {DS}.company_currencies ORDER BY 1") == [
        ("c1", "NZD"),
        ("c2", "AUD"),
    ]
    totals = dict(
        (r[0], (r[1], r[2], r[3]))
        for r in rows_of(db, f"SELECT request_id, currency_code, base_currency, total_base FROM {DS}.requests")
    )
    assert totals["usd"] == ("USD", "NZD", pytest.approx(100.0))
    assert totals["nzd-1"] == ("NZD", "NZD", 100.0)
    assert totals["no-rate"] == ("GBP", "NZD", None)  # no rate: no base amount, never a guess
    lines = dict(rows_of(db, f"SELECT request_id, amount_base FROM {DS}.request_lines"))
    assert lines == {"usd": pytest.approx(50.0), "nzd-1": 7.0}


def test_counts_are_bigint_not_hugeint() -> None:
    events = [event("b1", 0, SUBMITTED, "u1", "2025-01-01 00:00:00+00"), event("b1", 1, REJECTED, "u2", "2025-01-02")]
    db = warehouse(
        {**BASE, "xero_bills": [bill("b1")], "xero_bills__events": events, "xero_bills__line_items": [line("b1", 1.0)]}
    )
    kinds = rows_of(db, f"SELECT typeof(rejections), typeof(resets), typeof(approvers) FROM {DS}.approval_cycles")
    assert kinds == [("BIGINT", "BIGINT", "BIGINT")]
    assert rows_of(db, f"SELECT typeof(line_number) FROM {DS}.request_lines") == [("BIGINT",)]


def test_request_lines_number_from_one_and_join_tracking_in_category_order() -> None:
    line = {"_dlt_root_id": "d-b1", "_dlt_parent_id": "d-b1", "amount": 5.0, "account_code": "400"}
    tracking = {"_dlt_root_id": "d-b1", "_dlt_parent_id": "l1"}
    db = warehouse(
        {
            "xero_bills": [bill("b1")],
            "xero_bills__line_items": [
                {**line, "_dlt_id": "l1", "_dlt_list_idx": 0},
                {**line, "_dlt_id": "l2", "_dlt_list_idx": 1},
            ],
            "xero_bills__line_items__tracking": [
                {**tracking, "_dlt_id": "t1", "_dlt_list_idx": 0, "category_name": "Team", "option_name": "A"},
                {**tracking, "_dlt_id": "t2", "_dlt_list_idx": 1, "category_name": "Region", "option_name": "North"},
            ],
        }
    )
    got = rows_of(db, f"SELECT line_id, line_number, amount, tracking FROM {DS}.request_lines ORDER BY line_number")
    assert got == [("l1", 1, 5.0, "Region=North; Team=A"), ("l2", 2, 5.0, None)]
    tracked = rows_of(db, f"SELECT line_id, category_name, option_name FROM {DS}.request_line_tracking ORDER BY 2")
    assert tracked == [("l1", "Region", "North"), ("l1", "Team", "A")]


def test_request_events_name_authors_and_call_the_system_user_system() -> None:
    db = warehouse(
        {
            **BASE,
            "xero_bills": [bill("b1")],
            "xero_bills__events": [
                event("b1", 0, SUBMITTED, "u1", "2025-01-01 00:00:00+00"),
                event("b1", 1, "pushedToSource", SYSTEM_USER, "2025-01-01 01:00:00+00"),
                event("b1", 2, APPROVED, "u2", "2025-01-01 02:00:00+00", is_system=False),
            ],
        }
    )
    got = rows_of(db, f"SELECT event_number, author_name, is_system FROM {DS}.request_events ORDER BY event_number")
    # no is_system value: the system user's id decides
    assert got == [(1, "Ana Lee", False), (2, "System", True), (3, "Ben", False)]


def test_approval_cycles_measure_submission_to_the_last_decision() -> None:
    db = warehouse(
        {
            "xero_bills": [bill("b1"), bill("b2", request_status="onApproval")],
            "xero_bills__events": [
                event("b1", 0, SUBMITTED, "u1", "2025-01-01 00:00:00+00"),
                event("b1", 1, REJECTED, "u2", "2025-01-01 06:00:00+00"),
                event("b1", 2, "requesterUpdatedWithReset", "u1", "2025-01-01 07:00:00+00"),
                event("b1", 3, APPROVED, "u2", "2025-01-02 00:00:00+00"),
                event("b1", 4, APPROVED, "u3", "2025-01-02 12:00:00+00"),
                event("b2", 0, SUBMITTED, "u1", "2025-01-03 00:00:00+00"),
            ],
        }
    )
    got = rows_of(
        db, f"SELECT request_id, cycle_hours, rejections, resets, approvers FROM {DS}.approval_cycles ORDER BY 1"
    )
    assert got == [("b1", 36.0, 1, 1, 2), ("b2", None, 0, 0, 0)]  # b2 is undecided: no cycle yet


def test_governance_exceptions_find_each_planted_pattern_and_nothing_else() -> None:
    db = warehouse(
        {
            **BASE,
            "xero_bills": [
                bill("self", contact="A"),
                bill("changed", contact="B"),
                bill("flip", contact="C"),
                bill("dup1", contact="Bolt", total=200.0),
                bill("dup2", contact="Bolt", total=201.0, created_at="2025-01-01 12:00:00+00"),
                bill("far", contact="Bolt", total=200.0, created_at="2025-03-01 00:00:00+00"),  # weeks apart
                bill("clean", contact="Other"),
            ],
            "xero_bills__events": [
                event("self", 0, SUBMITTED, "u1", "2025-01-01 00:00:00+00"),
                event("self", 1, APPROVED, "u1", "2025-01-01 01:00:00+00"),
                event("changed", 0, "postApprovalChangeDetected", SYSTEM_USER, "2025-01-02 00:00:00+00"),
                event("flip", 0, REJECTED, "u2", "2025-01-01 00:00:00+00"),
                event("flip", 1, APPROVED, "u2", "2025-01-01 05:00:00+00"),
                event("clean", 0, SUBMITTED, "u1", "2025-01-01 00:00:00+00"),
                event("clean", 1, APPROVED, "u2", "2025-01-01 01:00:00+00"),
            ],
        }
    )
    got = rows_of(db, f"SELECT request_id, exception, related_request_id FROM {DS}.governance_exceptions ORDER BY 1, 2")
    assert got == [
        ("changed", "change_after_approval", None),
        ("dup1", "near_duplicate", "dup2"),
        ("dup2", "near_duplicate", "dup1"),
        ("flip", "reject_then_reapprove", None),
        ("self", "self_approval", None),
    ]


@pytest.mark.parametrize("dialect", ["postgres", "bigquery"])
def test_other_dialects_get_the_same_views_translated(dialect: str) -> None:
    columns = {table: {c: {"data_type": k} for c, k in cols.items()} for table, cols in TABLES.items()}
    statements = view_statements(DS, columns, dialect)
    created = [name for name, _ in statements if name is not None]
    assert created == list(VIEW_NAMES)
    cycles = {name: sql for name, sql in statements if name}["approval_cycles"]
    if dialect == "bigquery":
        assert "TIMESTAMP_DIFF" in cycles and "DATE_DIFF" not in cycles
    else:
        assert statements[0] == (None, f"DROP VIEW IF EXISTS {DS}.{VIEW_NAMES[-1]} CASCADE")
        assert all(sql.startswith("CREATE VIEW") for name, sql in statements if name)
