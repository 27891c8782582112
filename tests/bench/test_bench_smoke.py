"""`make bench` works end to end at tiny sizes (it measures nothing here: no timing assertions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..conftest import REPO, clean_environ


def bench(tmp_path: Path, *options: str) -> str:
    """`python -m benchmarks.run --quick OPTIONS`: the report it wrote."""
    out = tmp_path / "results.md"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", *options, "--out", str(out)],
        cwd=REPO,
        env={**clean_environ(), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out.read_text()


def test_bench_harness_prints_every_row(tmp_path: Path) -> None:
    report = bench(tmp_path)
    for contender in ("| floor |", "| floor, 2 processes |", "| rest_api |", "| rest_api_parquet |", "| ours |"):
        assert contender in report
    for scenario in (
        "full load",
        "memory at 10x",
        "ms latency",
        "rate limit",
        "incremental, nothing changed",
        "companies, 50 ms latency, quiet incremental",
        "history's cost",
        "webhooks, ",
        "for one company in 3 s, API limit 100/min per company |",
        "for 10 companies in 3 s, API limit 100/min per company |",
        "API limit 100/min per company, 3 scheduled runs meanwhile",
        "organisations, 20 ms latency: full load",
        "organisations, 20 ms latency: quiet incremental",
        "start-up, approvalmax --version",
        "start-up, approvalmax --help",
    ):
        assert scenario in report
    rows = [line for line in report.splitlines() if line.startswith("| ") and "---" not in line][1:]
    # four contenders at full load, ours with history off and history's cost, the floor under latency, ours
    # in four more, in two for many companies, the floor (in one process and in two) and ours twice for
    # many organisations, the listener under four loads, and two start-up rows
    assert len(rows) == 23
    # every row but start-up's made requests to the sandbox
    assert all(int(row.split("|")[6]) > 0 for row in rows if "start-up" not in row)
    assert "state written 0 bytes" in report  # a quiet run changes no cursor


def test_bench_compares_each_row_with_a_git_ref(tmp_path: Path) -> None:
    """The A/B: the ref's code runs beside this code and each row says how far apart they are."""
    report = bench(tmp_path, "--only", "start-up", "--baseline", "HEAD")
    assert report.count("| ours at HEAD |") == 2
    assert report.count("vs HEAD (<= +10%)") == 2
