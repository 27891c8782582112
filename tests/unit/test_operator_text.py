"""What operators read, without a run: settings refused by name, ages in words, the summary of a
run over many companies, and the listener's history rows merged per company and resource."""

from __future__ import annotations

from collections import Counter
from io import StringIO
from typing import Any

import pytest
from rich.console import Console

from approvalmax_pipeline.pipelines.cli.summary import WIDE_LIMIT, run_summary
from approvalmax_pipeline.pipelines.operations.status import age_text
from approvalmax_pipeline.pipelines.run import RunResult
from approvalmax_pipeline.pipelines.warehouse.load_step import merge_history
from approvalmax_pipeline.sources.approvalmax.companies import companies_of
from approvalmax_pipeline.sources.approvalmax.config import ApprovalMaxSettings, validate
from approvalmax_pipeline.sources.approvalmax.errors import ConfigError
from approvalmax_pipeline.sources.approvalmax.report import RunReport


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("api_base_url", "ftp://x", "SOURCES__APPROVALMAX__API_BASE_URL must be an http(s) URL"),
        ("lookback_minutes", -1.0, "SOURCES__APPROVALMAX__LOOKBACK_MINUTES must be 0 or more"),
        ("concurrency", 0, "SOURCES__APPROVALMAX__CONCURRENCY must be between 1 and 64"),
        ("max_concurrency", 257, "SOURCES__APPROVALMAX__MAX_CONCURRENCY must be between 1 and 256"),
        ("rate_limit_per_minute", -1, "SOURCES__APPROVALMAX__RATE_LIMIT_PER_MINUTE must be 0 (off) or more"),
        ("max_attempts", 0, "SOURCES__APPROVALMAX__MAX_ATTEMPTS must be 1 or more"),
        ("reconcile_every_hours", -1.0, "SOURCES__APPROVALMAX__RECONCILE_EVERY_HOURS must be 0"),
    ],
)
def test_a_setting_out_of_range_is_refused_by_its_variable_name(field: str, value: Any, message: str) -> None:
    settings = ApprovalMaxSettings()
    validate(settings)  # the defaults pass
    setattr(settings, field, value)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(settings)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "never"), (59, "59 s"), (600, "10 min"), (3 * 3600, "3.0 h"), (5 * 86400, "5.0 days")],
)
def test_ages_read_in_the_unit_that_fits(seconds: float | None, text: str) -> None:
    assert age_text(seconds) == text


def test_a_run_over_more_companies_than_fit_side_by_side_is_summarised_per_company_then_per_table() -> None:
    companies = companies_of({"companyId": f"c{i}", "name": f"Org {i}"} for i in range(WIDE_LIMIT + 1))
    rows = {f"c{i}": Counter({"xero_bills": i, "xero_bills__line_items": 2 * i, "companies": 1}) for i in range(7)}
    result = RunResult(
        companies=companies,
        report=RunReport(rows=rows),
        table_rows={"xero_bills": 21, "xero_bills__line_items": 42, "companies": 7},
        requests=30,
        retries=0,
        throttled=0,
        token_refreshes=1,
        duration=1.5,
        destination="duckdb",
        dataset="approvalmax",
        pipeline="approvalmax",
    )
    console = Console(file=StringIO(), width=120)
    console.print(run_summary(result))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "rows loaded per company" in text and "rows loaded per table" in text
    assert "Org 6" in text and "#7" not in text  # a row per company, not a column
    org6 = next(line for line in text.splitlines() if "Org 6" in line)
    assert org6.replace("│", " ").split()[-2:] == ["6", "19"]  # its documents (bills), then all its rows


def test_the_listeners_history_has_one_row_per_company_and_resource() -> None:
    def row(company: str, started: int, finished: int, loaded: int, requests: int | None) -> dict[str, Any]:
        times = {"started_at": started, "finished_at": finished}
        return {"company_id": company, "resource": "xero_bills", **times, "rows_loaded": loaded, "requests": requests}

    merged = merge_history([row("c", 1, 2, 3, 2), row("c", 5, 6, 1, None), row("d", 5, 7, 0, 1)])
    assert [(r["company_id"], r["started_at"], r["finished_at"], r["rows_loaded"], r["requests"]) for r in merged] == [
        ("c", 1, 6, 4, 2),  # first start, last finish, counts summed (a batch without requests counts 0)
        ("d", 5, 7, 0, 1),
    ]
