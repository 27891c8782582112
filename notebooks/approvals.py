"""Approval analytics on the ApprovalMax warehouse: pending work, cycle times, spend, governance.

A marimo notebook: `marimo edit notebooks/approvals.py` to explore, `python notebooks/approvals.py`
to run it, `python notebooks/approvals.py --html report.html` for a report that opens anywhere
(one file: plots and tables inline, nothing fetched). Reads the DuckDB file in APPROVALMAX_DUCKDB
(default: the demo's approvalmax_demo.duckdb) through the views the pipeline creates after every load.

"Spend" is the `spend_lines` view's: approved bills, and approved purchase orders not yet billed,
line by line, in each company's base currency (amounts are never added across currencies).
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell
def _():
    import base64
    import html
    import io
    import os
    from collections import defaultdict
    from datetime import UTC, datetime

    import duckdb
    import marimo as mo
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def png(fig) -> mo.Html:
        """A figure as an inline PNG: it shows the same in marimo, its export and the offline report."""
        _buffer = io.BytesIO()
        fig.savefig(_buffer, format="png", dpi=100)
        plt.close(fig)
        _data = base64.b64encode(_buffer.getvalue()).decode()
        return mo.Html(f'<img alt="plot" style="max-width: 100%" src="data:image/png;base64,{_data}">')

    def table(items: list[dict]) -> mo.Html:
        """Rows as a plain HTML table (no script needed to show it)."""
        if not items:
            return mo.Html("<p><em>none</em></p>")
        _head = "".join(f"<th>{html.escape(str(k))}</th>" for k in items[0])
        _body = "".join(
            "<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in item.values()) + "</tr>"
            for item in items
        )
        return mo.Html(f'<table class="report"><thead><tr>{_head}</tr></thead><tbody>{_body}</tbody></table>')

    return UTC, datetime, defaultdict, duckdb, mo, os, plt, png, table


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
def _(UTC, datetime, mo, plt, png, rows):
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
                "The API says who submitted a request and who acted on it, not who holds it now, "
                "so pending work is shown by requester and age."
            ),
            png(fig_pending),
        ]
    )
    return (pending,)


@app.cell
def _(mo, plt, png, rows, table):
    cycles = rows("""
        select document_type, company_name, cycle_hours from {ds}.approval_cycles
        where request_status in ('approved', 'rejected') and cycle_hours is not null
    """)
    _groups: dict[str, list[float]] = {}
    for _row in cycles:
        _groups.setdefault(_row["document_type"].replace("xero_", ""), []).append(_row["cycle_hours"] / 24)
    _labels = sorted(_groups)
    _days = sorted(d for v in _groups.values() for d in v)
    # outliers are drawn; the axis stops at the 98th percentile so the boxes stay readable, and says what is beyond
    _top = _days[int(0.98 * (len(_days) - 1))] * 1.1 if _days else 1.0
    _beyond = sum(1 for d in _days if d > _top)
    fig_cycles, ax_cycles = plt.subplots(figsize=(9, 4))
    ax_cycles.boxplot([_groups[k] for k in _labels], tick_labels=_labels, showfliers=True)
    ax_cycles.set_ylim(0, _top)
    ax_cycles.set_ylabel("days from submission to decision")
    _note = f"; {_beyond} beyond the axis, the longest {max(_days):.0f} days" if _beyond else ""
    ax_cycles.set_title(f"Approval cycle time by document type (outliers shown{_note})", fontsize=10)
    ax_cycles.tick_params(axis="x", rotation=30)
    fig_cycles.tight_layout()
    _by_company = rows("""
        select company_name, document_type, count(*) as decided, round(median(cycle_hours) / 24, 1) as median_days,
               round(quantile_cont(cycle_hours, 0.9) / 24, 1) as p90_days,
               cast(sum(rejections) as bigint) as rejections
        from {ds}.approval_cycles where cycle_hours is not null group by all order by 1, 2
    """)
    mo.vstack([mo.md("## How long approvals take"), png(fig_cycles), table(_by_company)])
    return (cycles,)


@app.cell
def _(defaultdict, mo, plt, png, rows, table):
    spend = rows("""
        select base_currency, strftime(document_date, '%Y-%m') as month, account_code,
               round(sum(amount_base), 2) as amount, count(*) as lines
        from {ds}.spend_lines where amount_base is not null
        group by all order by 1, 2
    """)
    unconverted = rows("""
        select currency_code, count(*) as lines, round(sum(amount), 2) as amount
        from {ds}.spend_lines where amount_base is null group by all order by 1
    """)
    _currencies = sorted({_row["base_currency"] for _row in spend})
    fig_spend, _axes = plt.subplots(
        max(len(_currencies), 1), 1, figsize=(10, 3.2 * max(len(_currencies), 1)), squeeze=False
    )
    for _ax, _currency in zip(_axes[:, 0], _currencies, strict=False):
        _rows = [r for r in spend if r["base_currency"] == _currency]
        _months = sorted({r["month"] for r in _rows})
        _by_account: dict[str, dict[str, float]] = defaultdict(dict)
        for _row in _rows:
            _by_account[_row["account_code"]][_row["month"]] = _row["amount"]
        _bottom = [0.0] * len(_months)
        for _account in sorted(_by_account):
            _values = [_by_account[_account].get(m, 0.0) for m in _months]
            _ax.bar(_months, _values, bottom=_bottom, label=_account)
            _bottom = [x + y for x, y in zip(_bottom, _values, strict=True)]
        _ax.set_title(f"Spend by account code, companies keeping their books in {_currency}", fontsize=10)
        _ax.set_ylabel(_currency)
        _ax.tick_params(axis="x", rotation=60, labelsize=7)
        _ax.legend(title="account", ncol=2, fontsize=7)
    fig_spend.tight_layout()
    tracking = rows("""
        select s.base_currency, k.category_name, k.option_name, round(sum(s.amount_base), 2) as amount,
               count(distinct s.request_id) as requests
        from {ds}.spend_lines s join {ds}.request_line_tracking k on k.line_id = s.line_id
        where s.amount_base is not null
        group by all order by 1, 2, 4 desc
    """)
    fig_tracking, ax_tracking = plt.subplots(figsize=(9, 0.3 * max(len(tracking), 4) + 1))
    _labels_t = [f"{r['category_name']}: {r['option_name']} ({r['base_currency']})" for r in tracking]
    ax_tracking.barh(_labels_t, [r["amount"] for r in tracking])
    ax_tracking.set_title("Spend by tracking option, in each company's base currency", fontsize=10)
    fig_tracking.tight_layout()
    mo.vstack(
        [
            mo.md(
                "## Where the money goes\n"
                "**Spend** is approved bills and approved purchase orders not yet billed (a billed order is "
                "counted by its bill), line by line, by document date, in each company's base currency "
                "(amount / Xero's exchange rate). Amounts in different base currencies are never added."
            ),
            png(fig_spend),
            png(fig_tracking),
            mo.md("Spend lines with no exchange rate, left out above:") if unconverted else mo.md(""),
            table(unconverted) if unconverted else mo.md(""),
        ]
    )
    return spend, tracking


@app.cell
def _(mo, plt, png, rows, table):
    exceptions = rows("""
        select g.exception, g.document_type, r.company_name, r.document_number, r.contact, r.total, r.currency_code,
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
            png(fig_gov),
            table(exceptions),
        ]
    )
    return (exceptions,)


STYLE = """body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2rem auto; padding: 0 1rem; }
table.report { border-collapse: collapse; font-size: 12px; margin: 0.5rem 0 1.5rem; }
table.report th, table.report td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
code { background: #f3f3f3; padding: 0 3px; }"""


def write_report(path: str) -> None:
    """Run every cell and write their outputs as one HTML file that needs nothing else to show."""
    outputs, _definitions = app.run()
    body = "\n".join(getattr(output, "text", "") for output in outputs if output is not None)
    with open(path, "w", encoding="utf-8") as report:
        report.write(
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>ApprovalMax approvals</title>'
            f"<style>{STYLE}</style></head><body>{body}</body></html>\n"
        )


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--html":
        write_report(sys.argv[2])
    else:
        app.run()
