"""Destinations and scheduling: PostgreSQL on a real server, switching destinations, busy runs."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from ..conftest import Workspace
from .test_run import document_requests
from .truth import assert_equals_sandbox


def test_postgres_full_then_incremental_from_a_fresh_working_folder(workspace: Workspace, postgres_db: str) -> None:
    pg = workspace.on_postgres(postgres_db)
    first = pg.cli("run", "--no-progress")
    assert first.returncode == 0, first.stderr + first.stdout
    assert "into postgres" in first.stdout
    assert_equals_sandbox(pg)
    pg.admin("POST", "mutate", modify=5, add=4)
    pg.admin("POST", "reset-stats")
    # a fresh working folder, as an Airflow worker gets: the cursors come from PostgreSQL
    second = pg.cli("run", "--no-progress", env={"DLT_DATA_DIR": str(pg.root / "another-worker")})
    assert second.returncode == 0, second.stderr + second.stdout
    requests = document_requests(pg)
    assert len(requests) == 3 * 7 and all("modifiedAtOrAfter" in e["query"] for e in requests)
    assert_equals_sandbox(pg)
    duplicates = pg.query(
        "select count(*) from (select company_id, request_id from approvalmax.xero_bills "
        "group by 1, 2 having count(*) > 1) d"
    )
    assert duplicates == [(0,)]


# Without a lookback, only the cursors decide what is fetched: stale ones would lose rows.
NO_LOOKBACK = {"SOURCES__APPROVALMAX__LOOKBACK_MINUTES": "0"}


def test_switching_destinations_loads_each_completely(workspace: Workspace, postgres_db: str) -> None:
    workspace.env.update(NO_LOOKBACK)
    pg = workspace.on_postgres(postgres_db)
    assert workspace.cli("run", "--no-progress").returncode == 0  # DuckDB
    workspace.admin("POST", "mutate", modify=3, add=2)
    assert pg.cli("run", "--no-progress").returncode == 0  # PostgreSQL: everything, not just changes
    assert_equals_sandbox(pg)
    workspace.admin("POST", "mutate", modify=3, add=2)
    assert workspace.cli("run", "--no-progress").returncode == 0  # back to DuckDB: both rounds of changes
    assert_equals_sandbox(workspace)
    assert pg.cli("run", "--no-progress").returncode == 0
    assert_equals_sandbox(pg)


def test_restored_warehouse_backup_gets_the_changes_it_lost(workspace: Workspace) -> None:
    workspace.env.update(NO_LOOKBACK)
    assert workspace.cli("run", "--no-progress").returncode == 0
    backup = workspace.root / "backup.duckdb"
    shutil.copy(workspace.duckdb_file, backup)
    workspace.admin("POST", "mutate", modify=5, add=5)
    assert workspace.cli("run", "--no-progress").returncode == 0
    shutil.copy(backup, workspace.duckdb_file)  # the warehouse goes back in time; the working folder does not
    assert workspace.cli("run", "--no-progress").returncode == 0
    assert_equals_sandbox(workspace)


# Two requests at a time, so the first run is still running when the second starts.
SLOW = {"SOURCES__APPROVALMAX__MAX_CONCURRENCY": "2"}


def start_run(workspace: Workspace, *args: str) -> subprocess.Popen[str]:
    workspace.release()
    return subprocess.Popen(
        [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", "run", "--no-progress", *args],
        cwd=workspace.root,
        env={**workspace.env, **SLOW},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_requests(workspace: Workspace) -> None:
    for _ in range(200):
        if workspace.admin("GET", "stats")["requests"] > 0:
            return
        time.sleep(0.05)
    raise AssertionError("the first run never reached the API")


def test_second_run_while_the_first_runs_exits_4_and_disturbs_nothing(workspace: Workspace) -> None:
    workspace.admin("POST", "config", latency=0.05)
    first = start_run(workspace)
    wait_for_requests(workspace)
    second = workspace.process("run", "--no-progress")
    assert second.returncode == 4, second.stderr
    assert "another run of pipeline approvalmax is in progress" in second.stderr
    assert first.wait(timeout=180) == 0, first.stderr.read() if first.stderr else ""
    workspace.admin("POST", "config", latency=0.0)
    assert_equals_sandbox(workspace)


def test_second_run_with_wait_runs_after_the_first(workspace: Workspace) -> None:
    workspace.admin("POST", "config", latency=0.02)
    first = start_run(workspace)
    wait_for_requests(workspace)
    second = workspace.process("run", "--no-progress", "--wait", "120")
    assert first.wait(timeout=180) == 0
    assert second.returncode == 0, second.stderr
    assert_equals_sandbox(workspace)


def test_duckdb_file_held_past_the_wait_exits_4_before_any_api_call(workspace: Workspace) -> None:
    assert workspace.cli("run", "--no-progress", "--resource", "companies").returncode == 0
    workspace.admin("POST", "reset-stats")
    before = workspace.token_file.read_text()
    workspace.release()
    holder = duckdb.connect(str(workspace.duckdb_file))  # e.g. an analyst's notebook with a write lock
    try:
        # a held file is waited for up to warehouse_retry_seconds (180 by default): here 1 s
        result = workspace.process(
            "run", "--no-progress", "--wait", "1", env={"SOURCES__APPROVALMAX__WAREHOUSE_RETRY_SECONDS": "1"}
        )
    finally:
        holder.close()
    assert result.returncode == 4, result.stderr
    assert "Could not set lock on file" in result.stderr and "not touched" in result.stderr
    assert workspace.admin("GET", "stats")["requests"] == 0
    assert workspace.token_file.read_text() == before
    assert workspace.cli("run", "--no-progress").returncode == 0


READER = (
    "import duckdb, sys\n"
    "db = duckdb.connect(sys.argv[1], read_only=True)\n"
    "print('holding', flush=True)\n"
    "sys.stdin.readline()\n"
)


def holding_reader(database: Path) -> subprocess.Popen[str]:
    """A read-only connection to the DuckDB file in a process of its own, open once this returns;
    it lets go when its stdin is closed."""
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(database)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert reader.stdout is not None
    assert reader.stdout.readline().strip() == "holding"
    return reader


def test_a_reader_holding_the_duckdb_file_makes_a_run_wait_quietly_and_go_on(workspace: Workspace) -> None:
    """An analyst's read-only connection (a notebook, a BI tool) open as the run starts, closed once
    the run is waiting for it: the run waits without a word at the default level and loads everything."""
    assert workspace.cli("run", "--no-progress", "--resource", "companies").returncode == 0
    workspace.release()
    reader = holding_reader(workspace.duckdb_file)
    assert reader.stdin is not None
    run = subprocess.Popen(
        [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", "--log-level", "info", "run", "--no-progress"],
        cwd=workspace.root,
        env=workspace.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert run.stderr is not None
    lines = []
    for line in run.stderr:  # the run says at info level that it waits; then the reader lets go
        lines.append(line)
        if "another process has the DuckDB file open" in line:
            break
    reader.stdin.close()  # ends the reader (also if the run ended without waiting, which fails below)
    reader.wait(timeout=60)
    _stdout, rest = run.communicate(timeout=180)
    stderr = "".join(lines) + rest
    assert run.returncode == 0, stderr
    waits = [line for line in stderr.splitlines() if "another process has the DuckDB file open" in line]
    assert waits and all(" INFO " in line for line in waits), stderr  # it waited, quietly
    loud = [line for line in stderr.splitlines() if " WARNING " in line or " ERROR " in line]
    assert loud == [], stderr
    assert_equals_sandbox(workspace)


def test_a_reader_holding_the_duckdb_file_makes_a_listener_batch_wait_quietly_and_go_on(ws: Workspace) -> None:
    from .test_listener import listening

    assert ws.cli("run", "--no-progress").returncode == 0
    with listening(ws, env={"APPROVALMAX_LOG_LEVEL": "info"}) as listener:
        ws.release()
        reader = holding_reader(ws.duckdb_file)
        assert reader.stdin is not None
        ws.admin("POST", "config", webhook_url=listener.endpoint)
        changes = ws.admin("POST", "mutate", modify=2, add=1)
        expected = len(changes["modified"]) + len(changes["added"])
        assert listener.process.stderr is not None
        lines = []
        for line in listener.process.stderr:  # the batch says at info level that it waits
            lines.append(line)
            if "another process has the DuckDB file open" in line:
                break
        reader.stdin.close()  # the reader lets go (also if the listener ended, which fails below)
        reader.wait(timeout=60)
        assert len(listener.wait_loaded(expected)) >= expected
        listener.process.send_signal(signal.SIGTERM)
        _out, rest = listener.process.communicate(timeout=60)
        stderr = "".join(lines) + rest
        assert listener.process.returncode == 0, stderr
    assert any("another process has the DuckDB file open" in line for line in lines), stderr
    loud = [line for line in stderr.splitlines() if " WARNING " in line or " ERROR " in line or "Traceback" in line]
    assert loud == [], stderr
    assert_equals_sandbox(ws)
