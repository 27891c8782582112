"""`approvalmax listen`: the webhook receiver and its loader in one process, stopped cleanly by SIGTERM.

The receiver answers as soon as events are on disk; the loader drains the queue in micro-batches.
SIGTERM or SIGINT stops the receiver from taking new calls, lets the batch under way commit, and
leaves whatever is still queued on disk for the next start.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any

from approvalmax_pipeline.pipelines.errors import BusyError
from approvalmax_pipeline.pipelines.warehouse.factory import completed_target
from approvalmax_pipeline.pipelines.warehouse.target import Target
from approvalmax_pipeline.pipelines.warehouse.working_folder import run_lock
from approvalmax_pipeline.pipelines.webhooks.loader import LoaderStatus, WebhookLoader
from approvalmax_pipeline.pipelines.webhooks.queue_location import DEFAULT_QUEUE, is_shared, open_queue
from approvalmax_pipeline.pipelines.webhooks.server import RateLimit, WebhookServer
from approvalmax_pipeline.sources.approvalmax.config import ApprovalMaxSettings, env_name
from approvalmax_pipeline.sources.approvalmax.connector import Connector
from approvalmax_pipeline.sources.approvalmax.errors import ConfigError

log = logging.getLogger(__name__)

MIN_SECRET_LENGTH = 16


@dataclass(frozen=True)
class ListenRequest:
    host: str = "127.0.0.1"
    port: int = 8787
    target: Target = field(
        default_factory=Target
    )  # the listener loads by a pipeline of its own, `<pipeline_name>_listener`
    queue: str = DEFAULT_QUEUE  # a SQLite file's path, or a postgresql:// URL replicas share
    batch_seconds: float = 2.0
    max_requests_per_second: float = 50.0


def check_secrets(settings: ApprovalMaxSettings) -> tuple[str, ...]:
    """The secrets the webhook path may end with: the current one, then the previous one while
    ApprovalMax is being moved to the new (`webhook_previous_secret`, optional)."""
    secrets = [_checked(settings.webhook_secret, "webhook_secret")]
    if settings.webhook_previous_secret:
        previous = _checked(settings.webhook_previous_secret, "webhook_previous_secret")
        if previous == secrets[0]:
            raise ConfigError(
                f"{env_name('webhook_previous_secret')} is the same as {env_name('webhook_secret')}: give the old "
                "secret there while ApprovalMax moves to the new one, or unset it"
            )
        secrets.append(previous)
    return tuple(secrets)


def _checked(value: str | None, name: str) -> str:
    secret = value or ""
    if len(secret) < MIN_SECRET_LENGTH or not secret.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(
            f"{env_name(name)} must be set to {MIN_SECRET_LENGTH} or more letters, digits, - or _ "
            '(e.g. python -c "import secrets; print(secrets.token_urlsafe(32))"); it is the webhook URL\'s last part'
        )
    return secret


def listen(
    settings: ApprovalMaxSettings,
    request: ListenRequest,
    on_ready: Callable[[str], None] = lambda url: None,
    stop: threading.Event | None = None,
) -> LoaderStatus:
    """Serve until SIGTERM/SIGINT (or `stop`); returns what the loader did."""
    secrets = check_secrets(settings)
    check_queue(request)
    # a pipeline of its own, which never waits for a busy DuckDB file: a failed batch is tried again
    target = replace(
        completed_target(request.target, settings.token_store, settings.warehouse_retry_seconds).for_pipeline(
            "_listener"
        ),
        wait=0.0,
    )
    stop = stop or threading.Event()
    with _working_folder(target, request), Connector(settings) as connector:
        queue = open_queue(request.queue)
        loader = WebhookLoader(connector, queue, target, request.batch_seconds)
        burst = max(1, int(request.max_requests_per_second * 2))
        ready = threading.Event()
        server = WebhookServer(
            (request.host, request.port),
            secrets,
            queue,
            RateLimit(request.max_requests_per_second, burst),
            ready=lambda: ready.is_set() and loader.status.last_error is None,
        )
        previous = _on_signals(lambda: stop.set())
        serving = threading.Thread(target=server.serve_forever, name="webhook-server", daemon=True)
        serving.start()
        loading = threading.Thread(target=loader.run, args=(stop,), name="webhook-loader", daemon=True)
        try:
            loading.start()
            ready.set()
            on_ready(server.url)
            log.info("listening on %s%s<secret>", server.url, "/webhooks/approvalmax/")
            stop.wait()
        finally:
            server.shutdown()  # no new calls; the batch under way commits, the rest stays queued
            server.server_close()
            stop.set()
            loading.join()
            queue.close()
            _restore_signals(previous)
        return loader.status


def check_queue(request: ListenRequest) -> None:
    """Replicas sharing a PostgreSQL queue load at once: they need a warehouse that takes writers
    from several processes and machines, which a DuckDB file does not."""
    if is_shared(request.queue) and request.target.destination_name == "duckdb":
        raise ConfigError(
            "a PostgreSQL --queue is for listener replicas, which cannot share one DuckDB file: load into "
            "PostgreSQL (--destination postgres) or BigQuery, or give --queue a file path for a single listener"
        )


@contextlib.contextmanager
def _working_folder(target: Target, request: ListenRequest) -> Iterator[None]:
    """The run lock of the listener's working folder: replicas need one folder each."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(run_lock(target))
        except BusyError as exc:
            if not is_shared(request.queue):
                raise
            folder = target.pipelines_folder()
            raise BusyError(
                f"another listener runs in this working folder ({folder}): give each replica on one machine "
                "its own working folder (its own directory and DLT_DATA_DIR)"
            ) from exc
        yield


def _on_signals(handler: Callable[[], None]) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the batch under way", signum)
        handler()

    return {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
