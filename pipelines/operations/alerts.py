"""Alerts to a webhook: a JSON POST with `text` (what a Slack incoming webhook shows) and the
same facts as fields under `approvalmax`, for other receivers.

Sent for a failed run, a lost authorisation (exit 3), resources older than a freshness bound,
and a refresh token family within days of its deadline. Never a token, a secret or a document:
only ids, resource names, counts, times and the one-line error. A webhook that does not answer
is logged and never changes the run's exit code.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from approvalmax_pipeline.pipelines.errors import interrupted
from approvalmax_pipeline.pipelines.operations.refresh_deadline import refresh_deadlines
from approvalmax_pipeline.pipelines.run import RunResult
from approvalmax_pipeline.sources.approvalmax.config import ApprovalMaxSettings
from approvalmax_pipeline.sources.approvalmax.connector import settings_store
from approvalmax_pipeline.sources.clock import SYSTEM_CLOCK
from approvalmax_pipeline.sources.errors import first_line

log = logging.getLogger(__name__)

RUN_FAILED = "run_failed"
REAUTHORIZE = "reauthorize"
STALE = "stale"
REFRESH_TOKEN_EXPIRING = "refresh_token_expiring"


@dataclass(frozen=True)
class Alert:
    event: str
    text: str
    details: dict[str, Any] = field(default_factory=dict)


def result_alerts(result: RunResult) -> list[Alert]:
    if not result.report.failures:
        return []
    failures = [
        {"company_id": f.company_id, "resource": f.resource, "error": f.message} for f in result.report.failures
    ]
    companies = sorted({f["company_id"] for f in failures})
    return [
        Alert(
            RUN_FAILED,
            f"{len(failures)} resource(s) of {len(companies)} company(ies) failed to load: "
            + "; ".join(f"{f['company_id']} {f['resource']}: {f['error']}" for f in failures[:5]),
            {"exit_code": 1, "failures": failures},
        )
    ]


def error_alerts(code: int, message: str) -> list[Alert]:
    if code == 3:
        return [Alert(REAUTHORIZE, f"someone must authorise again: {message}", {"exit_code": 3, "error": message})]
    if code == 1:
        return [Alert(RUN_FAILED, f"the run failed: {message}", {"exit_code": 1, "error": message})]
    return []  # usage errors go to whoever typed them; busy (4) and Ctrl-C are nobody's problem


def stale_alerts(destination: str, dataset: str, max_age_hours: float | None) -> list[Alert]:
    if max_age_hours is None:
        return []
    from approvalmax_pipeline.pipelines.operations.status import read_status
    from approvalmax_pipeline.pipelines.warehouse.target import Target

    try:
        freshness, _failures = read_status(Target(destination, dataset), max_age_hours * 3600)
    except Exception as exc:  # no history yet, or the warehouse busy: nothing to say about freshness
        if interrupted(exc):
            raise
        log.info("freshness not checked: %s", first_line(exc))
        return []
    stale = [f for f in freshness if f.stale]
    if not stale:
        return []
    items = [
        {"company_id": f.company_id, "resource": f.resource, "last_success_at": _iso(f.last_success_at)} for f in stale
    ]
    return [
        Alert(
            STALE,
            f"{len(stale)} company resource(s) not loaded for {max_age_hours:g} h or more: "
            + "; ".join(
                f"{i['company_id']} {i['resource']} (last {i['last_success_at'] or 'never'})" for i in items[:5]
            ),
            {"max_age_hours": max_age_hours, "stale": items},
        )
    ]


def token_alerts(settings: ApprovalMaxSettings, warn_days: float) -> list[Alert]:
    store = settings_store(settings)
    try:
        with store.lock():
            record = store.load()
    except Exception as exc:
        log.info("refresh-token deadline not checked: %s", first_line(exc))
        return []
    if record is None:
        return []
    deadlines = refresh_deadlines(record)
    earliest = deadlines.earliest
    if earliest is None:
        return []
    days_left = (earliest - SYSTEM_CLOCK.now()).total_seconds() / 86_400
    if days_left >= warn_days:
        return []
    return [
        Alert(
            REFRESH_TOKEN_EXPIRING,
            f"the ApprovalMax refresh token may stop working in {max(days_left, 0):.1f} days "
            f"({earliest:%Y-%m-%d %H:%M} UTC, the earlier of 30 days from consent and from the last refresh): "
            "run `approvalmax auth login`",
            {
                "days_left": round(max(days_left, 0), 2),
                "deadline": _iso(earliest),
                "sliding_deadline": _iso(deadlines.sliding),
                "absolute_deadline": _iso(deadlines.absolute),
            },
        )
    ]


def send(url: str, alerts: Sequence[Alert], pipeline: str, dataset: str) -> int:
    """POST each alert; returns how many the webhook took. Failures are logged, never raised."""
    delivered = 0
    for alert in alerts:
        body = {
            "text": f"approvalmax ({pipeline} → {dataset}): {alert.text}",
            "approvalmax": {"event": alert.event, "pipeline": pipeline, "dataset": dataset, **alert.details},
        }
        for attempt in (1, 2):
            try:
                response = httpx.post(url, json=body, timeout=10.0)
                if response.is_success:
                    delivered += 1
                    break
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            if attempt == 2:
                log.warning("the alert webhook did not take the %s alert (%s)", alert.event, problem)
    return delivered


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def notify_after_run(settings: ApprovalMaxSettings, destination: str, dataset: str, result: RunResult) -> None:
    """A run that finished (with or without failed companies): failures, staleness, the token."""
    url = settings.alert_webhook_url
    if not url:
        return
    alerts = [
        *result_alerts(result),
        *stale_alerts(destination, dataset, settings.alert_max_age_hours),
        *token_alerts(settings, settings.alert_refresh_token_days),
    ]
    send(url, alerts, result.pipeline, dataset)


def notify_after_error(settings: ApprovalMaxSettings, pipeline: str, dataset: str, exc: BaseException) -> None:
    """A run that stopped with an error (exit 1 or 3 alert; 2, 4 and Ctrl-C do not)."""
    from approvalmax_pipeline.pipelines.errors import exit_code, find_cause, interrupted

    url = settings.alert_webhook_url
    if not url or interrupted(exc):
        return
    cause = find_cause(exc)
    alerts = error_alerts(exit_code(cause), first_line(cause))
    if alerts:
        send(url, alerts, pipeline, dataset)
