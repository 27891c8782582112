"""ApprovalMax's webhook payloads: their shape, checked, and which document type each event names.

The documented example:
`{"Events": [{"EventType": "Approved", "EventSubType": "ApprovedByApprover", "RequestType": "XeroBill",
"RequestId": "<uuid>", "CompanyId": "<uuid>", "TimeStamp": "2025-03-07T11:34:59.6353651+00:00"}],
"Entropy": "<random>"}`. Which table a `RequestType` loads into is the endpoint table's business
(`settings.DocumentType.request_types`), so a configured document type loads by webhook too.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from .errors import ApprovalMaxError

MAX_EVENTS = 1_000  # per POST


class PayloadError(ApprovalMaxError):
    """A webhook body that is not ApprovalMax's shape: answered 400, nothing queued."""


@dataclass(frozen=True)
class WebhookEvent:
    company_id: str
    request_id: str
    request_type: str
    event_type: str
    timestamp: str


def parse_payload(body: bytes) -> list[WebhookEvent]:
    """The events of one POST; PayloadError names what is wrong. An empty `Events` list is valid
    (the Developer Portal's validation call may well send one)."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"not JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Events"), list):
        raise PayloadError("the body must be an object with an `Events` list")
    events = document["Events"]
    if len(events) > MAX_EVENTS:
        raise PayloadError(f"more than {MAX_EVENTS} events in one call")
    return [_event(item, index) for index, item in enumerate(events)]


def _event(item: Any, index: int) -> WebhookEvent:
    if not isinstance(item, dict):
        raise PayloadError(f"Events[{index}] is not an object")
    values = {}
    for name in ("CompanyId", "RequestId", "RequestType"):
        value = item.get(name)
        if not isinstance(value, str) or not value:
            raise PayloadError(f"Events[{index}].{name} is missing or not text")
        values[name] = value
    for name in ("CompanyId", "RequestId"):
        try:
            uuid.UUID(values[name])
        except ValueError as exc:
            raise PayloadError(f"Events[{index}].{name} is not a UUID") from exc
    event_type, timestamp = item.get("EventType"), item.get("TimeStamp")
    return WebhookEvent(
        company_id=values["CompanyId"],
        request_id=values["RequestId"],
        request_type=values["RequestType"],
        event_type=event_type if isinstance(event_type, str) else "",
        timestamp=timestamp if isinstance(timestamp, str) else "",
    )
