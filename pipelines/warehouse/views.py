"""Analyst views over the loaded tables, written once in DuckDB SQL and generated for each
destination's dialect with sqlglot. Created after every load, from the tables that exist."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import dlt
import sqlglot
from dlt.destinations.sql_client import SqlClientBase
from sqlglot import exp

from approvalmax_pipeline.sources.approvalmax.errors import ApprovalMaxError
from approvalmax_pipeline.sources.approvalmax.hints import DELETED_AT
from approvalmax_pipeline.sources.approvalmax.history import HISTORY_TABLE
from approvalmax_pipeline.sources.approvalmax.settings import DOCUMENT_TYPES
from approvalmax_pipeline.sources.errors import first_line

SYSTEM_USER = "00000000-0000-0000-0000-000000000000"
APPROVED = "approverApprovedRequestApproved"
REJECTED = "approverRejected"
SUBMITTED = "requesterSubmitted"
RESET = "requesterUpdatedWithReset"
CHANGED_AFTER_APPROVAL = "postApprovalChangeDetected"
# Near-duplicate submissions: same company, type, contact and currency, totals within 1%,
# created within a day of each other.
NEAR_DUPLICATE_SHARE = 0.01
NEAR_DUPLICATE_SECONDS = 86_400

VIEW_NAMES = (
    "company_currencies",
    "requests",
    "request_lines",
    "request_line_tracking",
    "request_events",
    "approval_cycles",
    "governance_exceptions",
    "deleted_requests",
    "request_history",
    "spend_lines",
)


def spend_condition(r: str) -> str:
    """What "spend" means in every view and the notebook: approved bills, and approved purchase
    orders not yet billed (a billed one is counted by its bill); not deleted (the views' rule)."""
    return (
        f"(({r}.document_type = 'xero_bills' AND {r}.request_status = 'approved') OR "
        f"({r}.document_type = 'xero_purchase_orders' AND {r}.request_status = 'approved' "
        f"AND COALESCE({r}.billed, FALSE) = FALSE))"
    )


SQL_TYPES = {"text": "VARCHAR", "double": "DOUBLE", "bigint": "BIGINT", "bool": "BOOLEAN", "timestamp": "TIMESTAMPTZ"}
DIALECTS = {
    "duckdb": "duckdb",
    "motherduck": "duckdb",
    "postgres": "postgres",
    "bigquery": "bigquery",
    "snowflake": "snowflake",
}


class ViewsError(ApprovalMaxError):
    """The data loaded, but the analyst views could not be created."""


Columns = Mapping[str, Mapping[str, Mapping[str, Any]]]  # table -> column -> dlt column schema


def _col(columns: Columns, table: str, alias: str, name: str, kind: str) -> str:
    """`alias.name` when the table has that column, else a NULL of its type."""
    if name in columns.get(table, {}):
        return f"{alias}.{name}"
    return f"CAST(NULL AS {SQL_TYPES[kind]})"


def _live(columns: Columns, table: str, alias: str) -> str:
    """The WHERE that leaves out documents found deleted (warehouse/deletions.py)."""
    return f" WHERE {alias}.{DELETED_AT} IS NULL" if DELETED_AT in columns.get(table, {}) else ""


def document_tables(columns: Columns) -> list[str]:
    """Every loaded document table: the built-in types in their order, then configured ones."""
    known = [doc.resource for doc in DOCUMENT_TYPES if doc.resource in columns]
    configured = sorted(
        name
        for name, table in columns.items()
        if "__" not in name and "request_id" in table and name not in known and name != HISTORY_TABLE
    )
    return known + configured


def in_base(amount: str, currency: str, rate: str, base: str) -> str:
    """An amount in the company's base currency. `exchangeRate` is read as Xero's CurrencyRate:
    units of the document's currency per one unit of the base currency, so base = amount / rate
    (a guess docs/api-guesses.md lists; tests/unit/test_views_sql.py plants a known case)."""
    return f"CASE WHEN {currency} = {base} THEN {amount} WHEN {rate} > 0 THEN {amount} / {rate} END"


def company_currencies_sql(ds: str, columns: Columns) -> str:
    """Each company's base currency, as the documents show it: the currency of most documents
    whose exchange rate is 1 (Xero gives every base-currency document the rate 1)."""
    parts = [
        f"SELECT d.company_id, d.currency_code FROM {ds}.{t} AS d WHERE d.exchange_rate = 1 "
        "AND d.currency_code IS NOT NULL"
        for t in document_tables(columns)
        if {"exchange_rate", "currency_code"} <= set(columns[t])
    ]
    if not parts:
        return ""
    return (
        "SELECT company_id, currency_code AS base_currency, documents FROM ("
        "SELECT company_id, currency_code, COUNT(*) AS documents, "
        "ROW_NUMBER() OVER (PARTITION BY company_id ORDER BY COUNT(*) DESC, currency_code) AS pick "
        f"FROM ({' UNION ALL '.join(parts)}) AS x GROUP BY company_id, currency_code) AS y WHERE pick = 1"
    )


def _base_join(ds: str, columns: Columns, alias: str, company: str) -> tuple[str, str]:
    """(the base-currency expression, the join that gives it) for rows of `company`."""
    if not company_currencies_sql(ds, columns):
        return "CAST(NULL AS VARCHAR)", ""
    return f"{alias}.base_currency", f"LEFT JOIN {ds}.company_currencies AS {alias} ON {alias}.company_id = {company}"


def document_select(ds: str, columns: Columns, t: str, where: str) -> str:
    """One document table's rows in the columns `requests` and `deleted_requests` share."""

    def c(name: str, kind: str) -> str:
        return _col(columns, t, "d", name, kind)

    return (
        f"SELECT '{t}' AS document_type, d.company_id, d.request_id, d._dlt_id AS row_id, "
        f"COALESCE({c('document_number', 'text')}, {c('friendly_name', 'text')}) AS document_number, "
        f"{c('document_name', 'text')} AS document_name, {c('contact', 'text')} AS contact, "
        f"{c('total', 'double')} AS total, {c('currency_code', 'text')} AS currency_code, "
        f"{c('exchange_rate', 'double')} AS exchange_rate, {c('billed', 'bool')} AS billed, "
        f"{c('request_status', 'text')} AS request_status, {c('date', 'timestamp')} AS document_date, "
        f"{c('created_at', 'timestamp')} AS created_at, {c('modified_at', 'timestamp')} AS modified_at, "
        f"{c('decision_date', 'timestamp')} AS decision_date, {c(DELETED_AT, 'timestamp')} AS {DELETED_AT} "
        f"FROM {ds}.{t} AS d{where}"
    )


def requests_sql(ds: str, columns: Columns) -> str:
    parts = [document_select(ds, columns, t, _live(columns, t, "d")) for t in document_tables(columns)]
    if not parts:
        return ""
    union = " UNION ALL ".join(parts)
    company = "co.name" if "companies" in columns and "name" in columns["companies"] else "CAST(NULL AS VARCHAR)"
    join = f"LEFT JOIN {ds}.companies AS co ON co.company_id = r.company_id" if "companies" in columns else ""
    base, base_join = _base_join(ds, columns, "cc", "r.company_id")
    total_base = in_base("r.total", "r.currency_code", "r.exchange_rate", base)
    return (
        f"SELECT r.*, {company} AS company_name, {base} AS base_currency, {total_base} AS total_base "
        f"FROM ({union}) AS r {join} {base_join}"
    )


def request_lines_sql(ds: str, columns: Columns) -> str:
    parts = []
    for t in document_tables(columns):
        lines, tracking = f"{t}__line_items", f"{t}__line_items__tracking"
        if lines not in columns:
            continue
        tr = (
            f"LEFT JOIN (SELECT _dlt_parent_id, STRING_AGG(category_name || '=' || option_name, '; ' "
            f"ORDER BY category_name) AS tracking FROM {ds}.{tracking} GROUP BY _dlt_parent_id) AS tr "
            "ON tr._dlt_parent_id = l._dlt_id"
            if tracking in columns
            else ""
        )
        tracking_col = "tr.tracking" if tracking in columns else "CAST(NULL AS VARCHAR)"

        def c(name: str, kind: str, lines: str = lines) -> str:
            return _col(columns, lines, "l", name, kind)

        parts.append(
            f"SELECT '{t}' AS document_type, d.company_id, d.request_id, l._dlt_id AS line_id, "
            f"l._dlt_list_idx + 1 AS line_number, {c('description', 'text')} AS description, "
            f"{c('account_code', 'text')} AS account_code, {c('quantity', 'double')} AS quantity, "
            f"{c('item_price', 'double')} AS item_price, {c('amount', 'double')} AS amount, "
            f"{_col(columns, t, 'd', 'currency_code', 'text')} AS currency_code, "
            f"{_col(columns, t, 'd', 'exchange_rate', 'double')} AS exchange_rate, "
            f"{tracking_col} AS tracking FROM {ds}.{lines} AS l JOIN {ds}.{t} AS d ON l._dlt_root_id = d._dlt_id {tr}"
            f"{_live(columns, t, 'd')}"
        )
    return _with_base_amount(ds, columns, parts)


def _with_base_amount(ds: str, columns: Columns, parts: list[str]) -> str:
    """The union of `parts` (rows with amount, currency_code, exchange_rate), plus base_currency and amount_base."""
    if not parts:
        return ""
    base, base_join = _base_join(ds, columns, "cc", "x.company_id")
    amount_base = in_base("x.amount", "x.currency_code", "x.exchange_rate", base)
    return (
        f"SELECT x.*, {base} AS base_currency, {amount_base} AS amount_base "
        f"FROM ({' UNION ALL '.join(parts)}) AS x {base_join}"
    )


def spend_lines_sql(ds: str) -> str:
    return (
        "SELECT r.company_id, r.company_name, r.document_type, r.request_id, r.document_number, r.contact, "
        "r.document_date, l.line_id, l.line_number, l.account_code, l.description, l.tracking, l.currency_code, "
        "l.amount, l.base_currency, l.amount_base "
        f"FROM {ds}.request_lines AS l JOIN {ds}.requests AS r "
        f"ON r.company_id = l.company_id AND r.request_id = l.request_id WHERE {spend_condition('r')}"
    )


def request_line_tracking_sql(ds: str, columns: Columns) -> str:
    parts = []
    for t in document_tables(columns):
        lines, tracking = f"{t}__line_items", f"{t}__line_items__tracking"
        if tracking not in columns or lines not in columns:
            continue
        parts.append(
            f"SELECT '{t}' AS document_type, d.company_id, d.request_id, l._dlt_id AS line_id, "
            f"{_col(columns, lines, 'l', 'account_code', 'text')} AS account_code, "
            f"{_col(columns, lines, 'l', 'amount', 'double')} AS amount, "
            f"{_col(columns, t, 'd', 'date', 'timestamp')} AS document_date, "
            f"{_col(columns, t, 'd', 'currency_code', 'text')} AS currency_code, "
            f"{_col(columns, t, 'd', 'exchange_rate', 'double')} AS exchange_rate, "
            "k.category_name, k.option_name "
            f"FROM {ds}.{tracking} AS k JOIN {ds}.{lines} AS l ON k._dlt_parent_id = l._dlt_id "
            f"JOIN {ds}.{t} AS d ON l._dlt_root_id = d._dlt_id{_live(columns, t, 'd')}"
        )
    return _with_base_amount(ds, columns, parts)


def request_events_sql(ds: str, columns: Columns) -> str:
    parts = []
    for t in document_tables(columns):
        events = f"{t}__events"
        if events not in columns:
            continue
        parts.append(
            f"SELECT '{t}' AS document_type, d.company_id, d.request_id, e._dlt_list_idx + 1 AS event_number, "
            f"e.event_type, e.event_date, e.author_id, {_col(columns, events, 'e', 'is_system', 'bool')} AS is_system, "
            f"{_col(columns, events, 'e', 'comment', 'text')} AS comment "
            f"FROM {ds}.{events} AS e JOIN {ds}.{t} AS d ON e._dlt_root_id = d._dlt_id{_live(columns, t, 'd')}"
        )
    if not parts:
        return ""
    names = "CAST(NULL AS VARCHAR)"
    join = ""
    if "user_profiles" in columns:
        names = "TRIM(COALESCE(u.first_name, '') || ' ' || COALESCE(u.last_name, ''))"
        join = f"LEFT JOIN {ds}.user_profiles AS u ON u.company_id = ev.company_id AND u.user_id = ev.author_id"
    return (
        "SELECT ev.document_type, ev.company_id, ev.request_id, ev.event_number, ev.event_type, ev.event_date, "
        f"ev.author_id, CASE WHEN ev.author_id = '{SYSTEM_USER}' THEN 'System' ELSE {names} END AS author_name, "
        f"COALESCE(ev.is_system, ev.author_id = '{SYSTEM_USER}') AS is_system, ev.comment "
        f"FROM ({' UNION ALL '.join(parts)}) AS ev {join}"
    )


def deleted_requests_sql(ds: str, columns: Columns) -> str:
    """Documents a sweep found gone, in `requests`' columns (soft deletes; hard deletes leave no row)."""
    parts = [
        document_select(ds, columns, t, f" WHERE d.{DELETED_AT} IS NOT NULL")
        for t in document_tables(columns)
        if DELETED_AT in columns[t]
    ]
    return " UNION ALL ".join(parts)


def request_history_sql(ds: str, columns: Columns) -> str:
    """One row per version: valid until the next version, or until the document was found deleted."""
    if HISTORY_TABLE not in columns:
        return ""
    documents = " UNION ALL ".join(
        f"SELECT x.company_id, x.request_id, {_col(columns, t, 'x', DELETED_AT, 'timestamp')} AS deleted_at "
        f"FROM {ds}.{t} AS x"
        for t in document_tables(columns)
    )
    if not documents:
        return ""
    versions = (
        "SELECT *, ROW_NUMBER() OVER (PARTITION BY company_id, request_id, modified_at ORDER BY first_seen_at) AS copy "
        f"FROM {ds}.{HISTORY_TABLE}"
    )
    ordered = (
        "SELECT v.*, LEAD(v.modified_at) OVER (PARTITION BY v.company_id, v.request_id ORDER BY v.modified_at) "
        f"AS next_from FROM ({versions}) AS v WHERE v.copy = 1"
    )
    return (
        "SELECT h.document_type, h.company_id, h.request_id, h.modified_at AS valid_from, "
        "COALESCE(h.next_from, d.deleted_at) AS valid_to, "
        "(h.next_from IS NULL AND d.request_id IS NOT NULL AND d.deleted_at IS NULL) AS is_current, "
        "h.request_status, h.total, h.currency_code, h.line_items_digest, h.first_seen_at "
        f"FROM ({ordered}) AS h LEFT JOIN ({documents}) AS d "
        "ON d.company_id = h.company_id AND d.request_id = h.request_id"
    )


def approval_cycles_sql(ds: str) -> str:
    return (
        "SELECT r.document_type, r.company_id, r.company_name, r.request_id, r.document_number, r.request_status, "
        "c.submitted_at, c.decided_at, "
        "DATE_DIFF('second', c.submitted_at, c.decided_at) / 3600.0 AS cycle_hours, "
        # counts as BIGINT: DuckDB's SUM of integers is a HUGEINT, which pandas reads as float64
        "CAST(COALESCE(c.rejections, 0) AS BIGINT) AS rejections, CAST(COALESCE(c.resets, 0) AS BIGINT) AS resets, "
        "CAST(COALESCE(c.approvers, 0) AS BIGINT) AS approvers "
        f"FROM {ds}.requests AS r LEFT JOIN ("
        "SELECT company_id, request_id, "
        f"MIN(CASE WHEN event_type = '{SUBMITTED}' THEN event_date END) AS submitted_at, "
        f"MAX(CASE WHEN event_type IN ('{APPROVED}', '{REJECTED}') THEN event_date END) AS decided_at, "
        f"SUM(CASE WHEN event_type = '{REJECTED}' THEN 1 ELSE 0 END) AS rejections, "
        f"SUM(CASE WHEN event_type = '{RESET}' THEN 1 ELSE 0 END) AS resets, "
        f"COUNT(DISTINCT CASE WHEN event_type IN ('{APPROVED}', '{REJECTED}') THEN author_id END) AS approvers "
        f"FROM {ds}.request_events GROUP BY company_id, request_id) AS c "
        "ON c.company_id = r.company_id AND c.request_id = r.request_id"
    )


def governance_exceptions_sql(ds: str) -> str:
    """One row per request and exception: self_approval, change_after_approval,
    reject_then_reapprove, near_duplicate (with the other request of the pair)."""
    submitters = f"SELECT company_id, request_id, author_id FROM {ds}.request_events WHERE event_type = '{SUBMITTED}'"
    return " UNION ALL ".join(
        [
            "SELECT DISTINCT a.document_type, a.company_id, a.request_id, 'self_approval' AS exception, "
            "CAST(NULL AS VARCHAR) AS related_request_id, a.author_name AS detail "
            f"FROM {ds}.request_events AS a JOIN ({submitters}) AS s "
            "ON s.company_id = a.company_id AND s.request_id = a.request_id AND s.author_id = a.author_id "
            f"WHERE a.event_type = '{APPROVED}'",
            "SELECT DISTINCT document_type, company_id, request_id, 'change_after_approval' AS exception, "
            "CAST(NULL AS VARCHAR) AS related_request_id, comment AS detail "
            f"FROM {ds}.request_events WHERE event_type = '{CHANGED_AFTER_APPROVAL}'",
            "SELECT DISTINCT r.document_type, r.company_id, r.request_id, 'reject_then_reapprove' AS exception, "
            "CAST(NULL AS VARCHAR) AS related_request_id, CAST(NULL AS VARCHAR) AS detail "
            f"FROM {ds}.request_events AS r JOIN {ds}.request_events AS a "
            "ON a.company_id = r.company_id AND a.request_id = r.request_id "
            f"WHERE r.event_type = '{REJECTED}' AND a.event_type = '{APPROVED}' AND a.event_date > r.event_date",
            "SELECT a.document_type, a.company_id, a.request_id, 'near_duplicate' AS exception, "
            "b.request_id AS related_request_id, a.contact AS detail "
            f"FROM {ds}.requests AS a JOIN {ds}.requests AS b ON a.company_id = b.company_id "
            "AND a.document_type = b.document_type AND a.contact = b.contact AND a.currency_code = b.currency_code "
            "AND a.request_id <> b.request_id "
            f"WHERE ABS(a.total - b.total) <= {NEAR_DUPLICATE_SHARE} * GREATEST(ABS(a.total), ABS(b.total)) "
            f"AND ABS(DATE_DIFF('second', a.created_at, b.created_at)) <= {NEAR_DUPLICATE_SECONDS}",
        ]
    )


def view_statements(ds: str, columns: Columns, dialect: str) -> list[tuple[str | None, str]]:
    """(view name or None, statement) in dependency order, in the destination's dialect."""
    bodies = {
        "company_currencies": company_currencies_sql(ds, columns),
        "requests": requests_sql(ds, columns),
        "request_lines": request_lines_sql(ds, columns),
        "request_line_tracking": request_line_tracking_sql(ds, columns),
        "request_events": request_events_sql(ds, columns),
    }
    if bodies["requests"] and bodies["request_events"]:
        bodies["approval_cycles"] = approval_cycles_sql(ds)
        bodies["governance_exceptions"] = governance_exceptions_sql(ds)
    bodies["deleted_requests"] = deleted_requests_sql(ds, columns)
    bodies["request_history"] = request_history_sql(ds, columns)
    if bodies["requests"] and bodies["request_lines"]:
        bodies["spend_lines"] = spend_lines_sql(ds)
    statements: list[tuple[str | None, str]] = []
    if dialect == "postgres":  # CREATE OR REPLACE cannot change a view's columns there
        statements += [(None, f"DROP VIEW IF EXISTS {ds}.{name} CASCADE") for name in reversed(VIEW_NAMES)]
    verb = "CREATE VIEW" if dialect == "postgres" else "CREATE OR REPLACE VIEW"
    statements += [(name, translate(f"{verb} {ds}.{name} AS {body}", dialect)) for name, body in bodies.items() if body]
    return statements


def translate(sql: str, dialect: str) -> str:
    """DuckDB SQL to `dialect`. BigQuery needs TIMESTAMP_DIFF where DuckDB says DATE_DIFF."""
    if dialect == "duckdb":
        return sql
    tree = sqlglot.parse_one(sql, read="duckdb")
    if dialect == "bigquery":
        tree = tree.transform(_timestamp_diff)
    return tree.sql(dialect=dialect)


def _timestamp_diff(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.DateDiff):
        return exp.TimestampDiff(this=node.this, expression=node.expression, unit=node.unit)  # type: ignore[no-untyped-call]
    return node


def loaded_columns(pipeline: dlt.Pipeline) -> dict[str, dict[str, Any]]:
    """Tables and typed columns the destination holds, from dlt's schema."""
    schema = pipeline.default_schema
    return {
        name: {c: spec for c, spec in table.get("columns", {}).items() if spec.get("data_type")}
        for name, table in schema.tables.items()
        if not name.startswith("_dlt")
    }


@contextlib.contextmanager
def sql_session(pipeline: dlt.Pipeline, sql: SqlClientBase[Any] | None = None) -> Iterator[SqlClientBase[Any]]:
    """`sql` when the caller has one open (a connect costs more than these statements), else a new one."""
    if sql is not None:
        yield sql
        return
    with pipeline.sql_client() as opened:
        yield opened


def create_views(pipeline: dlt.Pipeline, sql: SqlClientBase[Any] | None = None) -> list[str]:
    """(Re)create the views in the pipeline's dataset; returns their names."""
    destination = pipeline.destination.destination_name if pipeline.destination else "duckdb"
    dialect = DIALECTS.get(destination, "duckdb")
    statements = view_statements(pipeline.dataset_name, loaded_columns(pipeline), dialect)
    try:
        with sql_session(pipeline, sql) as client:
            for _name, statement in statements:
                client.execute_sql(statement)
    except Exception as exc:
        first = first_line(exc)
        raise ViewsError(f"the data was loaded, but creating the analyst views failed: {first}") from exc
    return [name for name, _statement in statements if name is not None]
