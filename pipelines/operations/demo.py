"""`approvalmax demo`: the whole job against the bundled sandbox, into a local DuckDB file."""

from __future__ import annotations

import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
import duckdb

from approvalmax_pipeline.pipelines.run import RunRequest, run_pipeline
from approvalmax_pipeline.pipelines.warehouse.target import DATASET_NAME, Target
from approvalmax_pipeline.pipelines.webhooks.listen import ListenRequest, listen
from approvalmax_pipeline.pipelines.webhooks.queue_location import open_queue
from approvalmax_pipeline.sandbox import Sandbox, SandboxKnobs, start_sandbox
from approvalmax_pipeline.sandbox.server import send_webhooks
from approvalmax_pipeline.sources.approvalmax.config import ApprovalMaxCredentials, ApprovalMaxSettings
from approvalmax_pipeline.sources.clock import SYSTEM_CLOCK

DEMO_PIPELINE = "approvalmax_demo"
DEMO_DATASET = DATASET_NAME
DEMO_RATE_LIMIT = 100  # calls a minute per company, as ApprovalMax reportedly allows


@dataclass
class DemoPaths:
    workdir: Path  # pipeline working folder and token file, recreated on every demo
    duckdb_file: Path

    @property
    def token_file(self) -> Path:
        return self.workdir / "tokens.json"

    @property
    def pipelines_dir(self) -> Path:
        return self.workdir / "pipelines"


def demo_settings(sandbox: Sandbox, paths: DemoPaths) -> ApprovalMaxSettings:
    """Settings pointing at the sandbox; its client and refresh token are fakes of its own."""
    credentials = ApprovalMaxCredentials(
        client_id=sandbox.identity.client_id,
        client_secret=sandbox.identity.client_secret,
        refresh_token=sandbox.identity.issue_refresh_token(),
    )
    return ApprovalMaxSettings(
        api_base_url=sandbox.url,
        identity_base_url=sandbox.url,
        credentials=credentials,
        token_store=str(paths.token_file),
        webhook_secret=secrets.token_urlsafe(24),
    )


def reset_demo(paths: DemoPaths) -> None:
    """Remove what an earlier demo left, and only that."""
    shutil.rmtree(paths.workdir, ignore_errors=True)
    for leftover in (paths.duckdb_file, paths.duckdb_file.with_name(paths.duckdb_file.name + ".wal")):
        leftover.unlink(missing_ok=True)
    paths.workdir.mkdir(parents=True, mode=0o700)


def table_counts(duckdb_file: Path, dataset: str) -> dict[str, int]:
    with duckdb.connect(str(duckdb_file), read_only=True) as connection:
        names = [
            row[0]
            for row in connection.execute(
                "select table_name from information_schema.tables where table_schema = ? "
                "and table_name not like '\\_dlt%' escape '\\'",
                [dataset],
            ).fetchall()
        ]
        counts: dict[str, int] = {}
        for name in names:
            row = connection.execute(f'select count(*) from "{dataset}"."{name}"').fetchone()
            counts[name] = int(row[0]) if row else 0
        return counts


def run_demo(
    paths: DemoPaths,
    companies: int,
    documents: int,
    on_step: Callable[[str, Any], None],
) -> dict[str, int]:
    """Full load, change the sandbox, incremental load; `on_step` sees each result as it comes."""
    reset_demo(paths)
    # the API's reported limit, enforced: the runs and the listener pace themselves to it
    knobs = SandboxKnobs(rate_limit_per_minute=DEMO_RATE_LIMIT)
    with start_sandbox(companies=companies, documents_per_company=documents, knobs=knobs) as sandbox:
        settings = demo_settings(sandbox, paths)
        request = RunRequest(
            Target(
                dlt.destinations.duckdb(credentials=str(paths.duckdb_file)),
                DEMO_DATASET,
                DEMO_PIPELINE,
                str(paths.pipelines_dir),
            )
        )
        on_step("first", run_pipeline(settings, request))
        on_step("changes", sandbox.dataset.mutate(modify=5, add=3, now=SYSTEM_CLOCK.now()))
        on_step("second", run_pipeline(settings, request))
        on_step("webhook", webhook_step(sandbox, settings, request, paths))
    return table_counts(paths.duckdb_file, DEMO_DATASET)


def webhook_step(sandbox: Sandbox, settings: ApprovalMaxSettings, run: RunRequest, paths: DemoPaths) -> dict[str, Any]:
    """`approvalmax listen` in a thread: the sandbox changes two documents and sends their webhooks;
    returns how long each took from the POST's receipt to the warehouse commit."""
    request = ListenRequest(
        port=0,
        target=run.target,
        queue=str(paths.workdir / "webhooks.sqlite"),
        batch_seconds=0.5,
    )
    ready: list[str] = []
    stop = threading.Event()
    listener = threading.Thread(target=listen, args=(settings, request, ready.append, stop), daemon=True)
    listener.start()
    deadline = time.monotonic() + 60
    while not ready and listener.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    latencies: list[float] = []
    try:
        if ready:
            sandbox.dataset.mutate(modify=1, add=0, now=SYSTEM_CLOCK.now())
            touched = list(sandbox.dataset.touched)
            send_webhooks(f"{ready[0]}/webhooks/approvalmax/{settings.webhook_secret}", touched)
            while len(latencies) < len(touched) and time.monotonic() < deadline:
                time.sleep(0.2)
                queue = open_queue(request.queue)
                latencies = queue.latencies()
                queue.close()
    finally:
        stop.set()
        listener.join(timeout=60)
    return {"events": len(latencies), "seconds": latencies}
