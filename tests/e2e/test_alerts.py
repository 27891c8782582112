"""Alerts reach a local webhook receiver: a failed run, a lost authorisation, staleness, a refresh
token near its deadline; never a secret or a document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ..conftest import Workspace
from ..receiver import receiver


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with receiver("/hooks/T000/B000/x") as got:
        yield got.url, got.bodies


def events(received: list[dict[str, Any]]) -> list[str]:
    return [alert["approvalmax"]["event"] for alert in received]


def assert_nothing_secret(ws: Workspace, received: list[dict[str, Any]]) -> None:
    text = json.dumps(received)
    for secret in [ws.sandbox.identity.client_secret, *ws.sandbox.identity.refresh_tokens]:
        assert secret not in text
    assert "Bearer" not in text and "access_token" not in text
    assert all(isinstance(alert["text"], str) and alert["text"] for alert in received)  # what Slack shows


def test_a_failed_company_and_staleness_are_alerted(ws: Workspace, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = webhook
    env = {"SOURCES__APPROVALMAX__ALERT_WEBHOOK_URL": url, "SOURCES__APPROVALMAX__ALERT_MAX_AGE_HOURS": "24"}
    assert ws.cli("run", "--no-progress", env=env).returncode == 0
    assert received == []  # a good run, fresh, a new token: nothing to say
    victim = ws.sandbox.dataset.companies[0].company_id
    ws.admin("POST", "config", disabled_companies=[victim])
    assert ws.cli("run", "--no-progress", env={**env, "SOURCES__APPROVALMAX__ALERT_MAX_AGE_HOURS": "0"}).returncode == 1
    assert events(received) == ["run_failed", "stale"]
    failed, stale = received
    assert {f["company_id"] for f in failed["approvalmax"]["failures"]} == {victim}
    assert victim in failed["text"] and failed["approvalmax"]["exit_code"] == 1
    assert stale["approvalmax"]["stale"] and stale["approvalmax"]["max_age_hours"] == 0
    assert_nothing_secret(ws, received)


def test_lost_authorisation_is_alerted(ws: Workspace, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = webhook
    ws.admin("POST", "revoke", mode="disable")
    result = ws.cli("run", "--no-progress", env={"SOURCES__APPROVALMAX__ALERT_WEBHOOK_URL": url})
    ws.admin("POST", "enable")
    assert result.returncode == 3
    assert events(received) == ["reauthorize"] and received[0]["approvalmax"]["exit_code"] == 3
    assert_nothing_secret(ws, received)


def test_a_refresh_token_near_its_deadline_is_alerted(ws: Workspace, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = webhook
    assert ws.cli("run", "--no-progress").returncode == 0
    # consent 25 days ago: the absolute reading of "30 days" leaves 5, the sliding one 30
    record = json.loads(ws.token_file.read_text())
    record["authorized_at"] = (datetime.now(UTC) - timedelta(days=25)).isoformat()
    ws.token_file.write_text(json.dumps(record))
    assert ws.cli("run", "--no-progress", env={"SOURCES__APPROVALMAX__ALERT_WEBHOOK_URL": url}).returncode == 0
    assert events(received) == ["refresh_token_expiring"]
    details = received[0]["approvalmax"]
    assert 4.9 < details["days_left"] < 5.1 and details["deadline"] == details["absolute_deadline"]
    assert_nothing_secret(ws, received)


def test_a_webhook_that_does_not_answer_changes_nothing(ws: Workspace) -> None:
    victim = ws.sandbox.dataset.companies[0].company_id
    ws.admin("POST", "config", disabled_companies=[victim])
    result = ws.cli("run", "--no-progress", env={"SOURCES__APPROVALMAX__ALERT_WEBHOOK_URL": "http://127.0.0.1:9/x"})
    assert result.returncode == 1  # the run's own exit code, not the webhook's failure
    assert "the alert webhook did not take the run_failed alert" in result.stderr
