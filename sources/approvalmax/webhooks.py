"""ApprovalMax's webhook payloads: their shape, checked, and which document type each event names.

The documented example (../shared/approvalmax-api.md, "Webhooks"):
`{"Events": [{"EventType": "Approved", "EventSubType": "ApprovedByApprover", "RequestType": "XeroBill",
"RequestId": "<uuid>", "CompanyId": "<uuid>", "TimeStamp": "2025-03-07T11:34:59.6353651+00:00"}],
"Entropy": "<random>"}`. Only `XeroBill` and `QBooksExpense` are documented request types; the
others below follow their pattern (a guess, so an unknown type is logged and left to the sweep).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from .errors import ApprovalMaxError

# RequestType -> table (settings.DOCUMENT_TYPES' resource); XeroBill is documented, the rest guessed.
REQUEST_TYPES = {
    "XeroBill": "xero_bills",
    "XeroPurchaseOrder": "xero_purchase_orders",
    "XeroCreditNote": "xero_credit_notes",
    "XeroCreditNotePayable": "xero_credit_notes",
    "XeroSalesInvoice": "xero_sales_invoices",
    "XeroInvoice": "xero_sales_invoices",
    "XeroBatchPayment": "xero_batch_payments",
    "XeroAmaxPayBatch": "xero_batch_payments",
    "XeroQuote": "xero_quotes",
    "StandaloneRequest": "standalone_documents",
    "Standalone": "standalone_documents",
}
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

    @property
    def resource(self) -> str | None:
        """The table this event's document loads into, or None for a type we do not know."""
        return REQUEST_TYPES.get(self.request_type)


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
