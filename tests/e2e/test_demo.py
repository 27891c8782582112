"""`approvalmax demo` (what `make demo` runs), smaller: its five steps, and a warehouse that holds them.
The notebooks' tests (slow tier) run it again at its default size, as a process."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from ..conftest import clean_environ
from ..inprocess import run_cli


def test_demo_loads_changes_loads_again_takes_a_webhook_and_shows_the_tables(tmp_path: Path) -> None:
    args = ["demo", "--companies", "2", "--documents", "40", "--duckdb-file", "demo.duckdb", "--workdir", "work"]
    result = run_cli(args, {**clean_environ(), "COLUMNS": "200"}, tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    sections = re.findall(r"^== (\d)\. ", out, flags=re.MULTILINE)
    assert sections == ["1", "2", "3", "4", "5"], out
    assert "changed 10 and added 6 documents" in out  # 5 changed and 3 added per company
    first, second = re.findall(r"API requests \d+ .* token refreshes (\d+)", out)
    assert (first, second) == ("1", "0")  # the second load reuses the stored access token
    events = re.search(r"^(\d+) webhook events loaded; from receipt to warehouse commit: (.+)$", out, re.MULTILINE)
    assert events and events.group(1) == "2" and events.group(2) != "none", out  # one change per company
    shown = dict(re.findall(r"^│ (\w+) +│ +(\d+) │$", out[out.index("== 5. ") :], flags=re.MULTILINE))
    with duckdb.connect(str(tmp_path / "demo.duckdb"), read_only=True) as warehouse:
        for table in ("xero_bills", "request_versions", "run_history"):
            (count,) = warehouse.execute(f"select count(*) from approvalmax.{table}").fetchone() or (0,)
            assert count > 0 and shown[table] == str(count), table
        # every version loaded: the first load's, the changed and added ones, and the webhook's
        (versions,) = warehouse.execute("select count(*) from approvalmax.request_versions").fetchone() or (0,)
        (documents,) = warehouse.execute("select count(*) from approvalmax.requests").fetchone() or (0,)
        assert versions >= documents + 10 + 2
    assert (tmp_path / "work" / "tokens.json").exists()
