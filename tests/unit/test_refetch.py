"""The listener's reads: a batch's documents of one company and type from the list when cheaper,
the rest by id, never more than twice the reads by id, whatever the API does with the filter."""

from __future__ import annotations

import httpx
import pytest

from approvalmax_pipeline.pipelines.webhooks.refetch import LIST_MARGIN, refetch
from approvalmax_pipeline.sources.approvalmax.client import ApprovalMaxClient
from approvalmax_pipeline.sources.approvalmax.settings import DOCUMENT_TYPES
from approvalmax_pipeline.sources.approvalmax.timestamps import format_timestamp, parse_timestamp
from approvalmax_pipeline.sources.http_retry import RetryPolicy

from ..fake_clock import FakeClock

BILLS = next(t for t in DOCUMENT_TYPES if t.resource == "xero_bills")
TYPES = {BILLS.resource: BILLS}
COMPANY = "00000000-0000-0000-0000-00000000000c"
SINCE = parse_timestamp("2026-01-01T12:00:00Z")
assert SINCE is not None


class FakeApi:
    """Bills 0..n-1 of one company, bill i modified i seconds after SINCE; `filter` is what the API
    does with modifiedAtOrAfter: honoured, ignored, or refused (400 naming it)."""

    def __init__(self, bills: int, filter: str = "honoured", gone: frozenset[int] = frozenset()) -> None:
        self.bills, self.filter, self.gone = bills, filter, gone
        self.requests: list[httpx.Request] = []

    def bill(self, i: int) -> dict[str, object]:
        modified = SINCE.timestamp() + i
        return {"requestId": f"{i:08d}-0000-0000-0000-000000000000", "modifiedDate": modified}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        last = path.rsplit("/", 1)[1]
        if last != BILLS.path.rsplit("/", 1)[1]:  # one document by id
            i = int(last[:8])
            return httpx.Response(404) if i in self.gone or i >= self.bills else httpx.Response(200, json=self.bill(i))
        params = request.url.params
        floor = params.get("modifiedAtOrAfter")
        if floor is not None and self.filter == "refused":
            return httpx.Response(400, json={"errors": {"modifiedAtOrAfter": ["The value is not valid."]}})
        start = parse_timestamp(floor) if floor and self.filter == "honoured" else None
        listed = [
            self.bill(i)
            for i in range(self.bills)
            if i not in self.gone and (start is None or SINCE.timestamp() + i >= start.timestamp())
        ]
        offset = int(params.get("continuationToken", "0"))
        page = listed[offset : offset + 100]
        token = str(offset + 100) if offset + 100 < len(listed) else None
        return httpx.Response(200, json={"payload": page, "continuationToken": token})

    @property
    def list_calls(self) -> int:
        return sum(1 for r in self.requests if r.url.path.endswith(BILLS.path))


def client(api: FakeApi) -> ApprovalMaxClient:
    return ApprovalMaxClient(
        "https://api.test",
        transport=httpx.MockTransport(api),
        retry=RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0),
        clock=FakeClock(slept=[]),
    )


def wanted(indexes: range | list[int], api: FakeApi) -> dict[tuple[str, str, str], object]:
    return {(COMPANY, BILLS.resource, str(api.bill(i)["requestId"])): SINCE for i in indexes}


def test_many_documents_of_one_type_come_from_the_list_in_a_fraction_of_the_calls() -> None:
    api = FakeApi(250)
    read = refetch(client(api), TYPES, wanted(range(0, 250, 2), api))  # type: ignore[arg-type]
    assert len(read.documents) == 125 and not read.failed
    assert all(doc is not None for doc in read.documents.values())
    assert read.list_pages == 3 and read.by_id == 0 and len(api.requests) == 3
    floor = api.requests[0].url.params["modifiedAtOrAfter"]
    assert floor == format_timestamp(SINCE - LIST_MARGIN)


def test_a_lone_document_is_read_by_id() -> None:
    api = FakeApi(10)
    read = refetch(client(api), TYPES, wanted([3], api))  # type: ignore[arg-type]
    assert read.list_pages == 0 and read.by_id == 1 and len(read.documents) == 1


def test_what_the_list_does_not_return_is_read_by_id_and_a_404_is_none() -> None:
    api = FakeApi(20, gone=frozenset({5}))
    read = refetch(client(api), TYPES, wanted([1, 5, 7], api))  # type: ignore[arg-type]
    ids = {key[2][:8]: doc for key, doc in read.documents.items()}
    assert ids["00000005"] is None and ids["00000001"] is not None and ids["00000007"] is not None
    assert read.list_pages == 1 and read.by_id == 1


@pytest.mark.parametrize("behaviour", ["ignored", "refused"])
def test_an_api_that_ignores_or_refuses_the_filter_costs_at_most_twice_the_reads_by_id(behaviour: str) -> None:
    api = FakeApi(2_000, filter=behaviour)
    named = [1_900, 1_950, 1_990]  # far down a list read whole
    read = refetch(client(api), TYPES, wanted(named, api))  # type: ignore[arg-type]
    assert len(read.documents) == 3 and all(doc is not None for doc in read.documents.values())
    assert len(api.requests) <= 2 * len(named) + 1  # +1: the refused first page


def test_a_list_that_fails_costs_no_document_they_are_read_by_id() -> None:
    api = FakeApi(20)
    broken = api.__call__

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(BILLS.path):
            api.requests.append(request)
            return httpx.Response(500)
        return broken(request)

    reader = ApprovalMaxClient(
        "https://api.test",
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0),
        clock=FakeClock(slept=[]),
    )
    read = refetch(reader, TYPES, wanted([1, 5, 7], api))  # type: ignore[arg-type]
    assert not read.failed and read.by_id == 3
    assert all(doc is not None for doc in read.documents.values()) and len(read.documents) == 3
