"""The webhook secret's rotation: the previous secret is accepted beside the current one, and nothing else."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from approvalmax_pipeline.pipelines.webhooks.listen import check_secrets
from approvalmax_pipeline.pipelines.webhooks.server import WEBHOOK_PREFIX, RateLimit, WebhookServer
from approvalmax_pipeline.pipelines.webhooks.sqlite_queue import SqliteQueue
from approvalmax_pipeline.sources.approvalmax.config import ApprovalMaxSettings
from approvalmax_pipeline.sources.approvalmax.errors import ConfigError

CURRENT, PREVIOUS = "current-secret-0123456789", "previous-secret-0123456789"
BODY = (
    b'{"Events": [{"EventType": "Approved", "RequestType": "XeroBill", '
    b'"RequestId": "76d90f2d-0c06-4c97-8ebc-665168ca7b02", "CompanyId": "5df4a571-a352-4955-8a43-004d862dbda5", '
    b'"TimeStamp": "2025-03-07T11:34:59.6353651+00:00"}]}'
)


def settings(current: str | None, previous: str | None = None) -> ApprovalMaxSettings:
    made = ApprovalMaxSettings()
    made.webhook_secret = current
    made.webhook_previous_secret = previous
    return made


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    queue = SqliteQueue(tmp_path / "q.sqlite")
    server = WebhookServer(("127.0.0.1", 0), (CURRENT, PREVIOUS), queue, RateLimit(100, 100), ready=lambda: True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        queue.close()


def test_the_current_secret_alone_is_all_there_is_by_default() -> None:
    assert check_secrets(settings(CURRENT)) == (CURRENT,)


def test_a_previous_secret_is_accepted_after_the_current_one() -> None:
    assert check_secrets(settings(CURRENT, PREVIOUS)) == (CURRENT, PREVIOUS)


def test_a_short_previous_secret_is_refused_by_its_variable_name() -> None:
    with pytest.raises(ConfigError, match="SOURCES__APPROVALMAX__WEBHOOK_PREVIOUS_SECRET must be set to 16"):
        check_secrets(settings(CURRENT, "short"))


def test_a_previous_secret_equal_to_the_current_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="is the same as SOURCES__APPROVALMAX__WEBHOOK_SECRET"):
        check_secrets(settings(CURRENT, CURRENT))


@pytest.mark.parametrize(("secret", "status"), [(CURRENT, 200), (PREVIOUS, 200), ("other-secret-0123456789", 404)])
def test_the_server_takes_the_current_and_the_previous_secret_and_nothing_else(
    server_url: str, secret: str, status: int
) -> None:
    response = httpx.post(f"{server_url}{WEBHOOK_PREFIX}{secret}", content=BODY, timeout=10)
    assert response.status_code == status, response.text


def test_no_secret_reaches_the_debug_log(server_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="approvalmax_pipeline.pipelines.webhooks.server"):
        for secret in (CURRENT, PREVIOUS, "other-secret-0123456789"):
            httpx.post(f"{server_url}{WEBHOOK_PREFIX}{secret}?x=1", content=BODY, timeout=10)
    assert caplog.text.count("POST /webhooks/approvalmax/<secret>") == 3
    assert all(secret not in caplog.text for secret in (CURRENT, PREVIOUS, "other-secret-0123456789"))
