"""Approval analytics on the ApprovalMax warehouse: pending work, cycle times, spend, governance.

A marimo notebook: `marimo edit notebooks/approvals.py` to explore, `python notebooks/approvals.py`
or `marimo export html ...` to run it. Reads the DuckDB file in APPROVALMAX_DUCKDB (default: the
demo's approvalmax_demo.duckdb) through the views the pipeline creates after every load.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import os
    from collections import defaultdict
    from datetime import UTC, datetime

    import duckdb
    import marimo as mo
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return UTC, datetime, defaultdict, duckdb, mo, os, plt


@app.cell
def _(duckdb, mo, os):
    path = os.environ.get("APPROVALMAX_DUCKDB", "approvalmax_demo.duckdb")
    dataset = os.environ.get("APPROVALMAX_DATASET", "approvalmax")
    con = duckdb.connect(path, read_only=True)

    def rows(sql: str) -> list[dict]:
        cursor = con.execute(sql.replace("{ds}", dataset))
        _names = [d[0] for d in cursor.description]
        return [dict(zip(_names, _row, strict=True)) for _row in cursor.fetchall()]

    mo.md(f"# ApprovalMax approvals\nWarehouse `{path}`, dataset `{dataset}`.")
    return (rows,)


@app.cell
def _(UTC, datetime, mo, plt, rows):
    pending = rows("""
        select c.company_name, e.author_name as requester, c.submitted_at, c.document_type, c.document_number
        from {ds}.approval_cycles c
        left join {ds}.request_events e on e.company_id = c.company_id and e.request_id = c.request_id
            and e.event_type = 'requesterSubmitted' and e.event_number = 1
        where c.request_status = 'onApproval' and c.submitted_at is not null
    """)
    _now = datetime.now(UTC)
    _buckets = ("< 7 days", "7-30 days", "30-90 days", "> 90 days")

    def _bucket(days: float) -> str:
        return _buckets[0] if days < 7 else _buckets[1] if days < 30 else _buckets[2] if days < 90 else _buckets[3]

    _by_requester: dict[str, dict[str, int]] = {}
    for _row in pending:
        _age = (_now - _row["submitted_at"]).total_seconds() / 86_400
        _counts = _by_requester.setdefault(_row["requester"] or "unknown", dict.fromkeys(_buckets, 0))
        _counts[_bucket(_age)] += 1
    _names = sorted(_by_requester, key=lambda n: -sum(_by_requester[n].values()))[:12]
    fig_pending, ax_pending = plt.subplots(figsize=(9, 4))
    _bottom = [0] * len(_names)
    for _b in _buckets:
        _values = [_by_requester[n][_b] for n in _names]
        ax_pending.barh(_names, _values, left=_bottom, label=_b)
        _bottom = [x + y for x, y in zip(_bottom, _values, strict=True)]
    ax_pending.set_xlabel("requests waiting for approval")
    ax_pending.set_title("Pending approvals by requester and age")
    ax_pending.legend()
    fig_pending.tight_layout()
    mo.vstack(
        [
            mo.md(
                f"## What is waiting, and for how long\n{len(pending)} requests are on approval. "
                "The API says who submitted a request and who acted on it, not who holds it _now, "
                "so pending work is shown by requester and _age."
            ),
            fig_pending,
        ]
    )
    return (pending,)


@app.cell
def _(mo, plt, rows):
    cycles = rows("""
        select document_type, company_name, cycle_hours from {ds}.approval_cycles
        where request_status in ('approved', 'rejected') and cycle_hours is not null
    """)
    _groups: dict[str, list[float]] = {}
    for _row in cycles:
        _groups.setdefault(_row["document_type"].replace("xero_", ""), []).append(_row["cycle_hours"] / 24)
    _labels = sorted(_groups)
    fig_cycles, ax_cycles = plt.subplots(figsize=(9, 4))
    ax_cycles.boxplot([_groups[k] for k in _labels], tick_labels=_labels, showfliers=False)
    ax_cycles.set_ylabel("days from submission to decision")
    ax_cycles.set_title("Approval cycle time by document type")
    ax_cycles.tick_params(axis="x", rotation=30)
    fig_cycles.tight_layout()
    _by_company = rows("""
        select company_name, document_type, count(*) as decided, round(median(cycle_hours) / 24, 1) as median_days,
               round(quantile_cont(cycle_hours, 0.9) / 24, 1) as p90_days, sum(rejections) as rejections
        from {ds}.approval_cycles where cycle_hours is not null group by all order by 1, 2
    """)
    mo.vstack([mo.md("## How long approvals take"), fig_cycles, mo.ui.table(_by_company, selection=None)])
    return (cycles,)


@app.cell
def _(defaultdict, mo, plt, rows):
    spend = rows("""
        select strftime(r.document_date, '%Y-%m') as month, l.account_code, sum(l.amount) as amount
        from {ds}.request_lines l
        join {ds}.requests r on r.company_id = l.company_id and r.request_id = l.request_id
        where r.request_status = 'approved' and r.document_type in ('xero_bills', 'xero_purchase_orders')
        group by 1, 2 order by 1
    """)
    _months = sorted({_row["month"] for _row in spend})
    _by_account: dict[str, dict[str, float]] = defaultdict(dict)
    for _row in spend:
        _by_account[_row["account_code"]][_row["month"]] = _row["amount"]
    fig_spend, ax_spend = plt.subplots(figsize=(10, 4))
    _bottom = [0.0] * len(_months)
    for _account in sorted(_by_account):
        _values = [_by_account[_account].get(m, 0.0) for m in _months]
        ax_spend.bar(_months, _values, bottom=_bottom, label=_account)
        _bottom = [x + y for x, y in zip(_bottom, _values, strict=True)]
    ax_spend.set_title("Approved spend by account code (bills and purchase orders)")
    ax_spend.tick_params(axis="x", rotation=60)
    ax_spend.legend(title="account", ncol=2, fontsize=8)
    fig_spend.tight_layout()
    tracking = rows("""
        select category_name, option_name, round(sum(amount), 2) as amount, count(distinct request_id) as requests
        from {ds}.request_line_tracking group by 1, 2 order by 1, 3 desc
    """)
    fig_tracking, ax_tracking = plt.subplots(figsize=(9, 3.5))
    _labels_t = [f"{r['category_name']}: {r['option_name']}" for r in tracking]
    ax_tracking.barh(_labels_t, [r["amount"] for r in tracking])
    ax_tracking.set_title("Spend by tracking option (all document types)")
    fig_tracking.tight_layout()
    mo.vstack([mo.md("## Where the money goes"), fig_spend, fig_tracking])
    return spend, tracking


@app.cell
def _(mo, plt, rows):
    exceptions = rows("""
        select g.exception, g.document_type, r.company_name, r.document_number, r.contact, r.total,
               g.related_request_id, g.detail, g.request_id
        from {ds}.governance_exceptions g
        join {ds}.requests r on r.company_id = g.company_id and r.request_id = g.request_id
        order by 1, 3, 4
    """)
    _kinds = ("self_approval", "change_after_approval", "reject_then_reapprove", "near_duplicate")
    _counts = {k: sum(1 for e in exceptions if e["exception"] == k) for k in _kinds}
    fig_gov, ax_gov = plt.subplots(figsize=(8, 3))
    ax_gov.bar(list(_counts), list(_counts.values()), color="tab:red")
    ax_gov.set_title("Governance exceptions")
    fig_gov.tight_layout()
    mo.vstack(
        [
            mo.md(
                "## Where the workflow was bypassed\n"
                "- **self_approval**: the submitter approved their own request\n"
                "- **change_after_approval**: ApprovalMax saw the document change in Xero after approval\n"
                "- **reject_then_reapprove**: rejected, then approved later\n"
                "- **near_duplicate**: same contact, type and currency, totals within 1%, created within a day"
            ),
            fig_gov,
            mo.ui.table(exceptions, selection=None),
        ]
    )
    return (exceptions,)


if __name__ == "__main__":
    app.run()
