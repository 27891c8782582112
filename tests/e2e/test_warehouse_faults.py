"""Faults inside the warehouse: a PostgreSQL server stopped and started again mid-run, stopped for
longer than the retry window, a wrong password, a missing database. Each ends with its documented
exit code and one line, no traceback, and the warehouse equal to the sandbox after the next run."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from approvalmax_pipeline.sandbox import Sandbox

from ..conftest import Workspace, workspace_on
from ..postgres_server import PostgresServer, start_postgres
from .test_listener import listening
from .truth import assert_equals_sandbox


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    """A server of this module's own, with a password (so a wrong one is refused), that its tests
    stop and start."""
    made = start_postgres(password=True)
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def pg(ws: Workspace, server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[Workspace]:
    with contextlib.suppress(subprocess.CalledProcessError):
        server.resume()  # a test that failed half-way may have left it stopped
    name = "w_" + os.urandom(4).hex()
    yield ws.on_postgres(server.create_database(name))


class Run:
    """`approvalmax run` as a real process whose stderr is read line by line as it comes."""

    def __init__(self, workspace: Workspace, env: dict[str, str] | None = None, log_level: str = "warning") -> None:
        workspace.release()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", "--log-level", log_level, "run"],
            cwd=workspace.root,
            env={**workspace.env, **(env or {}), "APPROVALMAX_LOG_LEVEL": log_level},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text: str) -> None:
        """Block until a stderr line holds `text`; fails if the run ends first (a guard against a hang,
        not a timing assertion: the run is expected to print it long before)."""
        while True:
            line = self.lines.get(timeout=120)
            if line is None:
                raise AssertionError(f"the run ended without printing {text!r}:\n{''.join(self.stderr)}")
            self.stderr.append(line)
            if text in line:
                return

    def finish(self) -> tuple[int, str]:
        assert self.process.stdout is not None
        self.process.stdout.read()
        code = self.process.wait(timeout=300)
        while (line := self.lines.get(timeout=30)) is not None:
            self.stderr.append(line)
        return code, "".join(self.stderr)


def load_package_ready(workspace: Workspace) -> bool:
    folder = workspace.root / "dlt" / "pipelines" / "approvalmax" / "load" / "normalized"
    try:
        return any(folder.iterdir())
    except FileNotFoundError:
        return False


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr and "unexpected" not in stderr, stderr[-3000:]


def recovered(run: Run, pg: Workspace) -> None:
    """The run waited for the server, exited 0 without a traceback, and the warehouse is exact."""
    code, stderr = run.finish()
    assert code == 0, stderr[-3000:]
    assert ": back after" in stderr
    no_traceback(stderr)
    assert_equals_sandbox(pg)


def test_a_server_down_when_the_run_starts_is_waited_for_and_the_run_exits_0(
    pg: Workspace, server: PostgresServer
) -> None:
    server.pause()
    run = Run(pg, log_level="info")
    run.wait_for("the server refuses connections (down or restarting); retrying")
    server.resume()
    recovered(run, pg)


def test_a_server_restarted_during_the_load_is_retried_and_the_run_exits_0(
    pg: Workspace, server: PostgresServer
) -> None:
    assert pg.cli("run", "--no-progress").returncode == 0
    pg.admin("POST", "mutate", modify=60, add=60)
    run = Run(pg, log_level="info")
    while not load_package_ready(pg):  # normalised: the load into the server is next
        assert run.process.poll() is None, "the run ended before its load"
    server.pause()
    run.wait_for("; retrying in")  # whichever warehouse step met the stopped server
    server.resume()
    recovered(run, pg)
    statuses = pg.query("select status, count(*) from approvalmax.run_history group by 1")
    assert dict(statuses) == {"ok": 2 * 9 * len(pg.sandbox.dataset.companies)}  # both runs' rows, none lost


@pytest.mark.parametrize(
    ("line", "phases"),
    [
        ("loaded; checking deletions", ("deletions and views", "writing run_history", "taking the dataset lock")),
        ("warehouse done; writing run_history", ("writing run_history", "taking the dataset lock")),
    ],
    ids=["views", "history"],
)
def test_a_server_stopped_at_a_later_phase_is_retried_there_and_nothing_is_lost(
    pg: Workspace, server: PostgresServer, line: str, phases: tuple[str, ...]
) -> None:
    """The run is frozen (SIGSTOP) as it logs the phase, the server stopped, the run let go: the phase
    meets the stopped server, retries, and goes on once the server is back."""
    assert pg.cli("run", "--no-progress").returncode == 0
    pg.admin("POST", "mutate", modify=5, add=3)
    run = Run(pg, log_level="info")
    run.wait_for(line)
    run.process.send_signal(signal.SIGSTOP)
    server.pause()
    run.process.send_signal(signal.SIGCONT)
    run.wait_for("; retrying in")
    retried = run.stderr[-1]
    server.resume()
    code, stderr = run.finish()
    assert code == 0, stderr[-3000:]
    assert any(f"warehouse {phase}: " in retried for phase in phases), retried
    no_traceback(stderr)
    assert_equals_sandbox(pg)
    statuses = pg.query("select status, count(*) from approvalmax.run_history group by 1")
    assert dict(statuses) == {"ok": 2 * 9 * len(pg.sandbox.dataset.companies)}  # both runs' rows, none lost


def test_a_server_down_longer_than_the_retry_window_exits_5_with_one_line_then_a_rerun_is_exact(
    pg: Workspace, server: PostgresServer
) -> None:
    assert pg.cli("run", "--no-progress").returncode == 0
    pg.admin("POST", "mutate", modify=5, add=3)
    server.pause()
    run = Run(pg, env={"SOURCES__APPROVALMAX__WAREHOUSE_RETRY_SECONDS": "3"})
    code, stderr = run.finish()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 5, stderr[-3000:]
    assert len(lines) == 1, stderr  # the retries are info lines
    database = pg.postgres_dsn.rsplit("/", 1)[1] if pg.postgres_dsn else ""
    where, reason, fix = lines[-1].split(" · ")
    assert where == f"warehouse unavailable: PostgreSQL 127.0.0.1:{server.port}/{database} (taking the dataset lock)"
    assert reason == "the server refuses connections (down or restarting)"
    assert fix.startswith("nothing was lost")
    no_traceback(stderr)
    server.resume()
    rerun = pg.cli("run", "--no-progress")
    assert rerun.returncode == 0, rerun.stderr
    assert_equals_sandbox(pg)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda dsn: dsn.replace("postgres:postgres@", "postgres:wrong@"), "the password was refused"),
        (lambda dsn: dsn.rsplit("/", 1)[0] + "/no_such_database", "the database does not exist"),
    ],
    ids=["wrong-password", "missing-database"],
)
def test_a_refused_login_exits_6_with_one_line_naming_the_fix(pg: Workspace, change: object, reason: str) -> None:
    assert pg.postgres_dsn is not None
    bad = change(pg.postgres_dsn)  # type: ignore[operator]
    result = pg.process("run", "--no-progress", env={"DESTINATION__POSTGRES__CREDENTIALS": bad})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 6, result.stderr[-3000:]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("warehouse refused: PostgreSQL 127.0.0.1:"), lines[0]
    assert f" · {reason} · " in lines[0]
    assert "wrong" not in lines[0]  # the password is never printed
    no_traceback(result.stderr)
    rerun = pg.cli("run", "--no-progress")
    assert rerun.returncode == 0, rerun.stderr
    assert_equals_sandbox(pg)


@contextlib.contextmanager
def small_disk(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at `folder` (mounting needs root, as CI and these sessions run)."""
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
@pytest.mark.parametrize(
    ("size", "where"),
    [("3m", "DuckDB file"), ("400k", "the working folder")],
    ids=["duckdb-file", "working-folder"],
)
def test_a_full_disk_exits_6_with_one_line_and_the_run_after_space_is_freed_is_exact(
    tmp_path: Path, small_sandbox: Sandbox, size: str, where: str
) -> None:
    """The DuckDB file, the working folder and the token store on one small disk: which fills first
    depends on its size (a 3 MB disk holds the extracted files but not the loaded tables)."""
    with small_disk(tmp_path / "disk", size) as disk, workspace_on(disk, small_sandbox) as ws:
        full = ws.process("run", "--no-progress")
        lines = [line for line in full.stderr.splitlines() if line.strip()]
        assert full.returncode == 6, full.stderr[-3000:]
        assert len(lines) == 1, full.stderr[-3000:]
        assert lines[0].startswith(f"warehouse refused: {where} "), lines[0]
        assert " · the disk is full · free space there" in lines[0]
        no_traceback(full.stderr)
        subprocess.run(["mount", "-o", "remount,size=256m", str(disk)], check=True)
        rerun = ws.cli("run", "--no-progress")
        assert rerun.returncode == 0, rerun.stderr
        assert_equals_sandbox(ws)


def test_the_listener_keeps_accepting_while_the_server_is_down_and_loads_every_event_once_it_is_back(
    pg: Workspace, server: PostgresServer
) -> None:
    assert pg.cli("run", "--no-progress").returncode == 0
    with listening(pg, env={"SOURCES__APPROVALMAX__WAREHOUSE_RETRY_SECONDS": "2"}) as listener:
        server.pause()
        pg.admin("POST", "config", webhook_url=listener.endpoint)
        changes = pg.admin("POST", "mutate", modify=3, add=2)  # the sandbox posts each change: all answered 200
        expected = len(changes["modified"]) + len(changes["added"])
        while httpx.get(f"{listener.url}/readyz", timeout=5).status_code != 503:  # a batch met the stopped server
            assert listener.process.poll() is None
            time.sleep(0.1)
        with sqlite3.connect(listener.queue) as queue:
            queued, attempts = queue.execute("select count(*), max(attempts) from events").fetchone()
        assert queued >= expected and attempts == 0  # the warehouse's fault is not the events'
        server.resume()
        assert len(listener.wait_loaded(expected)) >= expected
        listener.process.send_signal(signal.SIGTERM)
        _out, err = listener.process.communicate(timeout=60)
        assert listener.process.returncode == 0, err
    no_traceback(err)
    assert "waits for the warehouse: warehouse unavailable: PostgreSQL" in err
    assert_equals_sandbox(pg)
