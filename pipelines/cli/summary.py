"""Rich renderables for the run summary, the state and the company list (the CLI prints them)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from approvalmax_pipeline.pipelines.operations.doctor import DIFFERS, VERIFIED, Check
from approvalmax_pipeline.pipelines.run import RunResult
from approvalmax_pipeline.sources.approvalmax.companies import Company

WIDE_LIMIT = 6  # up to this many companies, one column each


def company_label(company: Company) -> str:
    return company.name or company.id


def run_summary(result: RunResult) -> RenderableType:
    names = {c.id: company_label(c) for c in result.companies}
    tables = sorted({t for rows in result.report.rows.values() for t in rows} | set(result.table_rows))
    parts: list[RenderableType] = []
    kind = "backfill" if result.backfill else "load"
    status = "[red]with failures[/]" if result.failed else "[green]ok[/]"
    parts.append(
        Text.from_markup(
            f"[bold]{kind}[/] into {result.destination} dataset [bold]{result.dataset}[/] "
            f"(pipeline {result.pipeline}): {status} in {result.duration:.1f} s"
        )
    )
    company_ids = [c.id for c in result.companies]
    if len(company_ids) <= WIDE_LIMIT:
        grid = Table(title="rows loaded per table and company", title_justify="left")
        grid.add_column("table", no_wrap=True)
        for number, _cid in enumerate(company_ids, start=1):
            grid.add_column(f"#{number}", justify="right")
        grid.add_column("total", justify="right", style="bold")
        for table in tables:
            counts = [result.report.rows.get(cid, Counter()).get(table, 0) for cid in company_ids]
            grid.add_row(table, *map(str, counts), str(result.table_rows.get(table, sum(counts))))
        legend = "\n".join(f"#{n} {names[cid]} ({cid})" for n, cid in enumerate(company_ids, start=1))
        grid.caption = legend
        grid.caption_justify = "left"
    else:
        grid = Table(title="rows loaded per company", title_justify="left")
        grid.add_column("company")
        grid.add_column("documents", justify="right")
        grid.add_column("all rows", justify="right")
        for cid in company_ids:
            rows = result.report.rows.get(cid, Counter())
            documents = sum(n for t, n in rows.items() if "__" not in t and t not in ("companies", "user_profiles"))
            grid.add_row(names[cid], str(documents), str(sum(rows.values())))
        per_table = Table(title="rows loaded per table", title_justify="left")
        per_table.add_column("table")
        per_table.add_column("rows", justify="right")
        for table in tables:
            per_table.add_row(table, str(result.table_rows.get(table, 0)))
        parts.append(per_table)
    parts.insert(1, grid)
    if result.views:
        parts.append(Text(f"views: {', '.join(result.views)}"))
    parts.append(
        Text(
            f"API requests {result.requests} · retries {result.retries} · throttled (429) {result.throttled} "
            f"· token refreshes {result.token_refreshes}"
        )
    )
    sweep = sweep_line(result)
    if sweep:
        parts.append(Text(sweep))
    if result.phases:
        parts.append(Text("time: " + phase_line(result.phases)))
    for absent in result.report.not_applicable:
        name = names.get(absent.company_id, absent.company_id)
        parts.append(
            Text(
                f"not applicable: company {absent.company_id} ({name}) · {absent.resource} · the API answered 404, "
                "so this organisation does not have that document type; checked again each run, reported once",
                style="yellow",
            )
        )
    for failure in result.report.failures:
        name = names.get(failure.company_id, failure.company_id)
        parts.append(
            Text(f"FAILED company {failure.company_id} ({name}) · {failure.resource} · {failure.message}", style="red")
        )
    return Group(*parts)


def phase_line(phases: Mapping[str, float]) -> str:
    """`restore 0.2 s · extract 6.1 s · …`: where the run's time went (warehouse/phases.py)."""
    return " · ".join(f"{phase} {seconds:.1f} s" for phase, seconds in phases.items())


def sweep_line(result: RunResult) -> str:
    """What the sweep cost and found; empty when nothing was swept or checked."""
    deletions = result.deletions
    if not result.swept and not deletions.checked:
        return ""
    companies = len({company for company, _resource in result.swept})
    mark = "removed" if deletions.hard else "marked deleted"
    line = (
        f"sweep: {len(result.swept)} lists of {companies} companies read whole ({result.sweep_requests} requests) "
        f"· {deletions.candidates} not listed · {deletions.total} {mark}"
    )
    if deletions.still_served:
        line += f" · {deletions.still_served} still served by id, left live"
    if deletions.unanswered:
        line += f" · {deletions.unanswered} unanswered, checked again next run"
    return line


def cursor_table(cursors: Mapping[str, Mapping[str, str]]) -> Table:
    table = Table(title="incremental cursors (modifiedAt of the newest loaded row, per company)", title_justify="left")
    table.add_column("resource")
    table.add_column("company")
    table.add_column("cursor")
    for resource in sorted(cursors):
        for company_id, cursor in sorted(cursors[resource].items()):
            table.add_row(resource, company_id, cursor)
    return table


def companies_table(companies: Sequence[Company]) -> Table:
    table = Table(title=f"{len(companies)} organisation(s) this connection can read", title_justify="left")
    table.add_column("companyId")
    table.add_column("name")
    for company in companies:
        table.add_row(company.id, company.name)
    return table


def row_count_table(counts: Mapping[str, int], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("table", no_wrap=True)
    table.add_column("rows", justify="right")
    for name, count in sorted(counts.items()):
        table.add_row(name, str(count))
    return table


def doctor_table(checks: Sequence[Check]) -> Table:
    table = Table(title="what is assumed about the API, checked against yours", title_justify="left")
    table.add_column("assumption")
    table.add_column("result", no_wrap=True)
    table.add_column("seen")
    table.add_column("if it differs")
    styles = {VERIFIED: "green", DIFFERS: "red"}
    for check in checks:
        table.add_row(
            check.assumption, Text(check.result, style=styles.get(check.result, "yellow")), check.detail, check.fix
        )
    return table
