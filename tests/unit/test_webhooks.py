"""Webhook payloads, the receiver's rate limit, and its answer when the queue fails, without a network
(the queues themselves: tests/e2e/test_webhook_queues.py)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from approvalmax_pipeline.pipelines.webhooks.server import RateLimit, WebhookServer
from approvalmax_pipeline.pipelines.webhooks.sqlite_queue import SqliteQueue
from approvalmax_pipeline.sources.approvalmax.config import merge_document_types
from approvalmax_pipeline.sources.approvalmax.errors import ConfigError
from approvalmax_pipeline.sources.approvalmax.settings import DOCUMENT_TYPES, resource_for_request_type
from approvalmax_pipeline.sources.approvalmax.webhooks import PayloadError, parse_payload

COMPANY, REQUEST = "5df4a571-a352-4955-8a43-004d862dbda5", "76d90f2d-0c06-4c97-8ebc-665168ca7b02"
DOCUMENTED = {
    "Events": [
        {
            "EventType": "Approved",
            "EventSubType": "ApprovedByApprover",
            "RequestType": "XeroBill",
            "RequestId": REQUEST,
            "CompanyId": COMPANY,
            "TimeStamp": "2025-03-07T11:34:59.6353651+00:00",
        }
    ],
    "Entropy": "random",
}


def test_the_documented_example_is_one_event_for_xero_bills() -> None:
    (event,) = parse_payload(json.dumps(DOCUMENTED).encode())
    assert (event.company_id, event.request_id) == (COMPANY, REQUEST)
    assert resource_for_request_type(DOCUMENT_TYPES, event.request_type) == "xero_bills"
    assert event.event_type == "Approved" and event.timestamp.startswith("2025-03-07")


def test_an_unknown_request_type_parses_and_maps_to_no_table() -> None:
    body = {"Events": [{**DOCUMENTED["Events"][0], "RequestType": "QBooksExpense"}]}
    (event,) = parse_payload(json.dumps(body).encode())
    assert resource_for_request_type(DOCUMENT_TYPES, event.request_type) is None


def test_a_configured_document_type_names_its_own_request_types() -> None:
    types = merge_document_types(
        [{"table": "qbooks_expenses", "path": "qbooks/expenses", "request_types": ["QBooksExpense"]}]
    )
    assert resource_for_request_type(types, "QBooksExpense") == "qbooks_expenses"
    assert resource_for_request_type(types, "XeroBill") == "xero_bills"


def test_a_request_type_named_by_two_tables_is_refused() -> None:
    with pytest.raises(ConfigError, match="named by two tables"):
        merge_document_types([{"table": "more_bills", "path": "xero/more-bills", "request_types": ["XeroBill"]}])


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{", "not JSON"),
        (b"[]", "`Events` list"),
        (json.dumps({"Events": [1]}).encode(), "not an object"),
        (json.dumps({"Events": [{**DOCUMENTED["Events"][0], "RequestId": ""}]}).encode(), "RequestId"),
        (json.dumps({"Events": [{**DOCUMENTED["Events"][0], "CompanyId": "not-a-uuid"}]}).encode(), "UUID"),
    ],
)
def test_a_wrong_shape_names_what_is_wrong(body: bytes, problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        parse_payload(body)


def test_the_rate_limit_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    limit = RateLimit(rate=2, burst=3, clock=lambda: now[0])
    assert [limit.allow() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5  # one token back
    assert [limit.allow() for _ in range(2)] == [True, False]


class Unusable(SqliteQueue):
    """A queue whose store refuses everything: a full disk, or a shared queue's server gone."""

    def append(self, events: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    def depth(self) -> int:
        raise sqlite3.OperationalError("unable to open database file")


@contextlib.contextmanager
def served(queue: SqliteQueue) -> Iterator[str]:
    server = WebhookServer(("127.0.0.1", 0), ["s" * 20], queue, RateLimit(100, 100), ready=lambda: True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        queue.close()


def test_an_event_that_cannot_be_queued_is_answered_503_so_approvalmax_sends_it_again(tmp_path: Path) -> None:
    with served(Unusable(tmp_path / "q.sqlite")) as url:
        answer = httpx.post(f"{url}/webhooks/approvalmax/{'s' * 20}", content=json.dumps(DOCUMENTED), timeout=10)
    assert answer.status_code == 503 and answer.json() == {"error": "queue unavailable"}


def test_a_queue_that_cannot_be_reached_leaves_the_process_live_but_not_ready(tmp_path: Path) -> None:
    with served(Unusable(tmp_path / "q.sqlite")) as url:
        live, ready = httpx.get(f"{url}/healthz", timeout=10), httpx.get(f"{url}/readyz", timeout=10)
    assert (live.status_code, live.json()) == (200, {"status": "ok", "queued": None})
    assert (ready.status_code, ready.json()) == (503, {"ready": False, "queued": None})


@pytest.mark.parametrize(
    "stamp", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00", "x"]
)
def test_a_timestamp_out_of_range_or_far_in_the_past_starts_the_list_at_its_receipt(stamp: str) -> None:
    from approvalmax_pipeline.pipelines.webhooks.loader import oldest_change
    from approvalmax_pipeline.pipelines.webhooks.queue import QueuedEvent
    from approvalmax_pipeline.sources.approvalmax.webhooks import WebhookEvent

    received = 1_800_000_000.0
    event = QueuedEvent(1, WebhookEvent("c", "r", "XeroBill", "Approved", stamp), received, 0)
    assert oldest_change([event]).timestamp() == received
