"""`approvalmax listen` as a real process against the sandbox: webhooks in, versions in the warehouse."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from approvalmax_pipeline.pipelines.webhooks.queue_location import open_queue

from ..conftest import REPO as REPO_ROOT
from ..conftest import Workspace
from .test_reconcile import marked
from .truth import assert_equals_sandbox

SECRET = "test-secret-0123456789abcdef"
READY = re.compile(r"listening on (http://127\.0\.0\.1:\d+)/")


class Listener:
    def __init__(self, process: subprocess.Popen[str], url: str, queue: str) -> None:
        self.process, self.url, self.queue = process, url, queue

    @property
    def endpoint(self) -> str:
        return f"{self.url}/webhooks/approvalmax/{SECRET}"

    def post(self, body: Any, path: str | None = None, **kwargs: Any) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(path or self.endpoint, content=content, timeout=10, **kwargs)

    def loaded(self) -> list[float]:
        queue = open_queue(self.queue)
        try:
            return queue.latencies()
        finally:
            queue.close()

    def wait_loaded(self, count: int, timeout: float = 60) -> list[float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            latencies = self.loaded()
            if len(latencies) >= count:
                return latencies
            assert self.process.poll() is None, self.process.stderr.read() if self.process.stderr else ""
            time.sleep(0.2)
        raise AssertionError(f"{count} events not loaded in {timeout} s: {len(self.loaded())}")


@contextlib.contextmanager
def listeners(
    workspace: Workspace,
    *args: str,
    folders: Sequence[Path | None] = (None,),
    env: dict[str, str] | None = None,
    queue: str | None = None,
) -> Iterator[list[Listener]]:
    """`approvalmax listen` processes started together on free ports, one per working folder (None:
    the workspace's; a folder of its own gets its own DLT_DATA_DIR, as a replica elsewhere has);
    `queue` defaults to a SQLite file in the workspace."""
    queue = queue or str(workspace.root / "queue" / "webhooks.sqlite")
    environment = {**workspace.env, "SOURCES__APPROVALMAX__WEBHOOK_SECRET": SECRET, **(env or {})}
    command = [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", "listen", "--port", "0"]
    command += ["--queue", queue, "--batch-seconds", "0.5", *args]
    workspace.release()
    processes: list[subprocess.Popen[str]] = []
    try:
        for folder in folders:
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
            own = {"DLT_DATA_DIR": str(folder / "dlt")} if folder is not None else {}
            processes.append(
                subprocess.Popen(
                    command,
                    cwd=folder or workspace.root,
                    env={**environment, **own},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        started = []
        for process in processes:
            assert process.stderr is not None
            line = process.stderr.readline()
            found = READY.search(line)
            assert found, line + process.stderr.read()
            started.append(Listener(process, found.group(1), queue))
        yield started
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.contextmanager
def listening(workspace: Workspace, *args: str, env: dict[str, str] | None = None) -> Iterator[Listener]:
    """One `approvalmax listen` in the workspace, on a SQLite queue there."""
    with listeners(workspace, *args, env=env) as (listener,):
        yield listener


def event(company: str, request_id: str, request_type: str = "XeroBill") -> dict[str, str]:
    return {
        "EventType": "Approved",
        "EventSubType": "ApprovedByApprover",
        "RequestType": request_type,
        "RequestId": request_id,
        "CompanyId": company,
        "TimeStamp": "2025-03-07T11:34:59.6353651+00:00",
    }


def test_a_webhook_makes_the_new_version_queryable_and_sigterm_stops_cleanly(ws: Workspace) -> None:
    assert ws.cli("run", "--no-progress").returncode == 0
    with listening(ws) as listener:
        assert httpx.get(f"{listener.url}/healthz", timeout=5).status_code == 200
        ws.admin("POST", "config", webhook_url=listener.endpoint)
        changes = ws.admin("POST", "mutate", modify=3, add=2)
        expected = len(changes["modified"]) + len(changes["added"])
        latencies = listener.wait_loaded(expected)  # within wait_loaded's minute; speed is make bench's row
        assert len(latencies) >= expected and min(latencies) >= 0  # each event's receipt-to-commit time is recorded
        listener.process.send_signal(signal.SIGTERM)
        out, _err = listener.process.communicate(timeout=60)
        assert listener.process.returncode == 0 and f"{expected} events" in out
    assert_equals_sandbox(ws)  # the changes arrived by webhook alone: no run since
    history = ws.query("select count(*) from approvalmax.run_history where pipeline = 'approvalmax_listener'")
    assert history[0][0] > 0


def test_refused_calls_change_nothing(ws: Workspace) -> None:
    company = ws.sandbox.dataset.company_ids()[0]
    good = {"Events": [event(company, "00000000-0000-4000-8000-000000000001")], "Entropy": "x"}
    with listening(ws) as listener:
        assert (
            listener.post(good, path=f"{listener.url}/webhooks/approvalmax/wrong-secret-0123456789").status_code == 404
        )
        assert listener.post(good, path=f"{listener.url}/webhooks/other/{SECRET}").status_code == 404
        assert listener.post(b"{not json").status_code == 400
        assert listener.post({"Events": [{"RequestId": "x"}]}).status_code == 400
        assert listener.post({"events": []}).status_code == 400
        assert listener.post(b"x" * 1_100_000).status_code == 413
        assert listener.post({"Events": [], "Entropy": "validation"}).status_code == 200  # the portal's check
        queue = open_queue(listener.queue)
        assert queue.depth() == 0
        queue.close()
        assert httpx.get(f"{listener.url}/webhooks/approvalmax/{SECRET}", timeout=5).status_code == 404
    assert "company_id" not in (listener.process.stderr.read() if listener.process.stderr else "")


def test_kill_9_after_the_answer_then_a_restart_still_loads_the_event(ws: Workspace) -> None:
    assert ws.cli("run", "--no-progress").returncode == 0
    ws.admin("POST", "mutate", modify=1)
    from approvalmax_pipeline.sandbox.server import WEBHOOK_TYPES

    touched = list(ws.sandbox.dataset.touched)
    payload = {"Events": [event(c, rid, WEBHOOK_TYPES[t]) for c, t, rid in touched], "Entropy": "e"}
    # a batch interval long enough that the kill comes before any load
    with listening(ws, "--batch-seconds", "60") as listener:
        time.sleep(1.0)  # the loader's first look at the empty queue has passed
        assert listener.post(payload).status_code == 200
        os.kill(listener.process.pid, signal.SIGKILL)
        listener.process.wait(timeout=30)
    with listening(ws) as listener:
        listener.wait_loaded(len(touched))
    assert_equals_sandbox(ws)


def test_a_404_marks_the_document_deleted_and_duplicates_and_old_events_leave_it_exact(ws: Workspace) -> None:
    assert ws.cli("run", "--no-progress").returncode == 0
    with listening(ws) as listener:
        ws.admin("POST", "config", webhook_url=listener.endpoint)
        changes = ws.admin("POST", "mutate", delete=1, modify=2)
        touched = list(ws.sandbox.dataset.touched)
        from approvalmax_pipeline.sandbox.server import WEBHOOK_TYPES

        # the same events again, oldest last, and one of a type nobody knows
        again = [event(c, rid, WEBHOOK_TYPES[t]) for c, t, rid in reversed(touched)]
        unknown = event(touched[0][0], touched[0][2], "QBooksExpense")
        assert listener.post({"Events": [*again, *again, unknown], "Entropy": "e"}).status_code == 200
        listener.wait_loaded(2 * len(touched) + len(touched) + 1)
    assert marked(ws) == set(changes["deleted"])
    assert_equals_sandbox(ws)


@pytest.mark.parametrize("rounds", [3])
def test_the_listener_and_scheduled_runs_at_once_keep_the_warehouse_exact(
    ws: Workspace, postgres_db: str, rounds: int
) -> None:
    pg = ws.on_postgres(postgres_db)
    assert pg.cli("run", "--no-progress").returncode == 0
    with listening(pg, "--destination", "postgres") as listener:
        pg.admin("POST", "config", webhook_url=listener.endpoint)
        sent, deleted = 0, set()
        for _ in range(rounds):
            changes = pg.admin("POST", "mutate", modify=4, add=2, delete=1)
            sent += sum(len(changes[k]) for k in ("modified", "added", "deleted"))
            deleted |= set(changes["deleted"])
            run = subprocess.Popen(
                [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", "run", "--no-progress", "--reconcile"],
                cwd=pg.root,
                env=pg.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            out, err = run.communicate(timeout=300)
            assert run.returncode == 0, err + out
        listener.wait_loaded(sent)
    assert_equals_sandbox(pg)
    assert marked(pg) == deleted  # by the webhooks' 404s or the sweeps, whichever came first


def test_a_burst_for_one_company_and_a_run_meanwhile_share_the_api_limit_and_load_exactly(
    ws: Workspace, postgres_db: str
) -> None:
    """The sandbox enforces 6 calls a second per company; the listener and a sweep of the same
    company pace one shared budget, so neither meets a 429, and the burst's documents come from
    list reads, in far fewer calls than one per document."""
    pg = ws.on_postgres(postgres_db)
    assert pg.cli("run", "--no-progress").returncode == 0
    company = pg.sandbox.dataset.companies[0].company_id
    limit = {"SOURCES__APPROVALMAX__RATE_LIMIT_PER_MINUTE": "6", "SOURCES__APPROVALMAX__RATE_LIMIT_WINDOW_SECONDS": "1"}
    pg.admin("POST", "config", rate_limit_per_minute=6, rate_window_seconds=1.0)
    with listening(pg, "--destination", "postgres", env=limit) as listener:
        pg.admin("POST", "config", webhook_url=listener.endpoint)
        pg.admin("POST", "reset-stats")
        changes = pg.admin("POST", "mutate", modify=60, company=company)
        sent = len(changes["modified"])
        run = subprocess.Popen(
            [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", "run", "--no-progress", "--reconcile"],
            cwd=pg.root,
            env={**pg.env, **limit},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err + out
        listener.wait_loaded(sent, timeout=120)
    by_id = [e for e in pg.sandbox.stats.log if re.search(r"/[0-9a-f-]{36}/[a-z-]+/[a-z-]+/[0-9a-f-]{36}$", e["path"])]
    assert pg.sandbox.stats.by_status[429] == 0
    assert len(by_id) < sent / 3, f"{len(by_id)} documents read by id for {sent} events"
    assert_equals_sandbox(pg)


def test_the_sandboxs_printed_settings_are_enough_to_run_and_listen_under_its_rate_limit(tmp_path: Path) -> None:
    """As docs/webhooks.md has it: `approvalmax sandbox --webhook-url ... --rate-limit ...`, its export
    lines and nothing else, then `run` and `listen`; a change made in the sandbox reaches the warehouse."""
    from ..conftest import clean_environ
    from ..postgres_server import free_port
    from .test_readme import start_sandbox_process

    port = free_port()
    limit = ("--rate-limit", "20", "--rate-window", "2")
    sandbox, exports = start_sandbox_process(
        tmp_path / "sandbox.log",
        "--companies",
        "1",
        "--documents",
        "60",
        *limit,
        "--webhook-url",
        f"http://127.0.0.1:{port}",
    )
    assert exports["SOURCES__APPROVALMAX__RATE_LIMIT_PER_MINUTE"] == "20"
    env = {**clean_environ(), **exports, "HOME": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    approvalmax = [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli"]
    try:
        run = subprocess.run(
            [*approvalmax, "run", "--no-progress"], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
        listener = subprocess.Popen(
            [*approvalmax, "listen", "--port", str(port), "--batch-seconds", "0.5"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert listener.stderr is not None and READY.search(listener.stderr.readline())
        changed = httpx.post(f"{exports['SOURCES__APPROVALMAX__API_BASE_URL']}/_sandbox/mutate", json={"modify": 5})
        sent = len(changed.json()["modified"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            queue = open_queue(str(tmp_path / ".approvalmax" / "webhooks.sqlite"))
            loaded = len(queue.latencies())
            queue.close()
            if loaded >= sent:
                break
            time.sleep(0.2)
        listener.send_signal(signal.SIGTERM)
        out, err = listener.communicate(timeout=60)
        assert listener.returncode == 0, err
        assert f"{sent} events, {sent} documents loaded" in out, out + err
        assert re.search(r"API calls: \d+ list pages, \d+ by id", out), out
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)


@pytest.mark.parametrize("modified_filter", ["ignored", "refused"])
def test_list_reads_stay_exact_when_the_api_ignores_or_refuses_the_filter_and_for_silent_changes(
    ws: Workspace, modified_filter: str
) -> None:
    """Documents a list since the event does not return (a change that left modifiedAt alone) are
    read by id; a filter the API ignores or refuses costs calls, never a row."""
    assert ws.cli("run", "--no-progress").returncode == 0
    ws.admin("POST", "config", modified_filter=modified_filter)
    with listening(ws) as listener:
        ws.admin("POST", "config", webhook_url=listener.endpoint)
        changes = ws.admin("POST", "mutate", modify=6, add=2, silent=2, delete=1)
        sent = sum(len(changes[k]) for k in ("modified", "added", "silent", "deleted"))
        listener.wait_loaded(sent)
    assert marked(ws) == set(changes["deleted"])
    assert_equals_sandbox(ws)
