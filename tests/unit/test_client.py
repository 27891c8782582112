"""The API client over httpx.MockTransport: paging, retries and their timing, error mapping."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from approvalmax_pipeline.sources.approvalmax.client import ApprovalMaxClient
from approvalmax_pipeline.sources.approvalmax.errors import ApiError, ApiResponseError, ApiUnavailable
from approvalmax_pipeline.sources.http_retry import RetryPolicy

from ..fake_clock import FakeClock

Handler = Callable[[httpx.Request], httpx.Response]


def make_client(handler: Handler, sleeps: list[float], attempts: int = 4) -> ApprovalMaxClient:
    return ApprovalMaxClient(
        "https://api.test",
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_attempts=attempts, base_delay=1.0, max_delay=8.0),
        clock=FakeClock(slept=sleeps),
    )


def test_pages_follow_continuation_token_until_null() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append(params)
        token = params.get("continuationToken")
        nxt = {None: "p2", "p2": "p3", "p3": None}[token]
        return httpx.Response(200, json={"payload": [{"n": token or "p1"}], "continuationToken": nxt})

    pages = [page.documents() for page in make_client(handler, []).pages("/docs", {"modifiedAtOrAfter": "x"})]
    assert [p[0]["n"] for p in pages] == ["p1", "p2", "p3"]
    assert all(p["limit"] == "100" and p["modifiedAtOrAfter"] == "x" for p in seen)
    assert "continuationToken" not in seen[0]


def test_pages_stop_when_token_absent() -> None:
    client = make_client(lambda r: httpx.Response(200, json={"payload": [{"a": 1}]}), [])
    assert [page.documents() for page in client.pages("/docs", {})] == [[{"a": 1}]]


def test_repeated_continuation_token_stops_the_loop() -> None:
    client = make_client(lambda r: httpx.Response(200, json={"payload": [], "continuationToken": "same"}), [])
    with pytest.raises(ApiResponseError, match="repeated a continuation token"):
        list(client.pages("/docs", {}))


def test_429_waits_retry_after_then_succeeds() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json=[])])
    sleeps: list[float] = []
    client = make_client(lambda r: next(answers), sleeps)
    assert client.get_json("/x") == []
    assert sleeps == [7.0]
    assert (client.stats.requests, client.stats.retries, client.stats.throttled) == (2, 1, 1)


def test_5xx_backs_off_exponentially_with_jitter() -> None:
    answers = iter([httpx.Response(503)] * 3 + [httpx.Response(200, json={"ok": True})])
    sleeps: list[float] = []
    assert make_client(lambda r: next(answers), sleeps).get_json("/x") == {"ok": True}
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps, start=1):
        ceiling = min(8.0, 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling


def test_attempts_are_bounded_and_the_last_error_is_reported() -> None:
    sleeps: list[float] = []
    client = make_client(lambda r: httpx.Response(503, json={"title": "Service Unavailable"}), sleeps, attempts=3)
    with pytest.raises(ApiError, match="503"):
        client.get_json("/x")
    assert client.stats.requests == 3 and len(sleeps) == 2


def test_connection_errors_are_retried_then_reported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    sleeps: list[float] = []
    with pytest.raises(ApiUnavailable, match="failed 4 time"):
        make_client(handler, sleeps).get_json("/x")
    assert len(sleeps) == 3


def test_read_timeout_is_retried() -> None:
    calls = iter([None, "ok"])

    def handler(request: httpx.Request) -> httpx.Response:
        if next(calls) is None:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json=[1])

    assert make_client(handler, []).get_json("/x") == [1]


def test_truncated_json_is_retried() -> None:
    answers = iter(
        [
            httpx.Response(200, content=b'{"payload": [', headers={"content-type": "application/json"}),
            httpx.Response(200, json={"payload": []}),
        ]
    )
    sleeps: list[float] = []
    assert make_client(lambda r: next(answers), sleeps).get_json("/x") == {"payload": []}
    assert len(sleeps) == 1


def test_retry_after_longer_than_the_limit_is_not_waited_out() -> None:
    sleeps: list[float] = []
    client = make_client(lambda r: httpx.Response(429, headers={"Retry-After": "3600"}), sleeps)
    with pytest.raises(ApiError, match="429"):
        client.get_json("/x")
    assert sleeps == []


def test_client_errors_are_not_retried() -> None:
    sleeps: list[float] = []
    body = {"title": "Bad Request", "detail": "The c1 is disabled."}
    client = make_client(lambda r: httpx.Response(400, json=body), sleeps)
    with pytest.raises(ApiError, match="The c1 is disabled"):
        client.get_json("/api/v1/companies/c1/xero/bills")
    assert sleeps == [] and client.stats.requests == 1


def test_html_instead_of_json_names_the_base_url() -> None:
    client = make_client(
        lambda r: httpx.Response(200, text="<html>login</html>", headers={"content-type": "text/html"}), []
    )
    with pytest.raises(ApiResponseError, match="is api_base_url"):
        client.get_json("/x")


def test_accept_header_is_json() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=json.dumps([]).encode())

    make_client(handler, []).companies()
    assert seen[0].headers["accept"] == "application/json"
    assert seen[0].url.path == "/api/v1/companies"


def refusing(seen: list[dict[str, str]]) -> Handler:
    """An API that answers ASP.NET's 400 invalidInput to `modifiedAtOrAfter`."""

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append(params)
        if "modifiedAtOrAfter" in params:
            parameter = {"name": "modifiedAtOrAfter", "errorMessage": "The parameter is not supported."}
            body = {"title": "Invalid input", "status": 400, "error": {"parameters": [parameter]}}
            return httpx.Response(400, json=body)
        return httpx.Response(200, json={"payload": [{"n": 1}], "continuationToken": None})

    return handler


def test_a_refused_modified_filter_is_left_out_for_the_rest_of_the_run(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[dict[str, str]] = []
    client = make_client(refusing(seen), [])
    assert [page.documents() for page in client.pages("/a", {"modifiedAtOrAfter": "x"})] == [[{"n": 1}]]
    assert [page.documents() for page in client.pages("/b", {"modifiedAtOrAfter": "x"})] == [[{"n": 1}]]
    assert ["modifiedAtOrAfter" in p for p in seen] == [True, False, False]
    assert client.refused_filters == {"modifiedAtOrAfter"}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "modifiedAtOrAfter" in warnings[0] and "not supported" in warnings[0]


def test_a_400_about_another_parameter_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400, json={"title": "Bad", "error": {"parameters": [{"name": "limit", "errorMessage": "no"}]}}
        )

    with pytest.raises(ApiError, match="limit"):
        list(make_client(handler, []).pages("/a", {"modifiedAtOrAfter": "x"}))


def test_a_page_read_from_its_end_gives_its_token_and_the_same_documents_as_json() -> None:
    body = {"payload": [{"n": 1, "continuationToken": "inner"}], "continuationToken": 'a"b'}
    client = make_client(lambda r: httpx.Response(200, content=json.dumps(body).encode()), [])
    page = next(iter(client.pages("/docs", {})))
    assert page.parsed is None  # the envelope was read without parsing the documents
    assert page.continuation_token == 'a"b' and page.documents() == body["payload"]


def test_a_page_whose_token_comes_first_is_parsed_whole() -> None:
    content = b'{"continuationToken": null, "payload": [{"n": 1}]}'
    client = make_client(lambda r: httpx.Response(200, content=content), [])
    [page] = client.pages("/docs", {})
    assert page.parsed == [{"n": 1}] and page.continuation_token is None


def test_a_truncated_page_is_retried() -> None:
    answers = iter([httpx.Response(200, content=b'{"payload": [{"n": 1}'), httpx.Response(200, json={"payload": []})])
    sleeps: list[float] = []
    assert [page.documents() for page in make_client(lambda r: next(answers), sleeps).pages("/docs", {})] == [[]]
    assert len(sleeps) == 1


def test_requests_in_flight_are_bounded_per_company_and_for_the_run() -> None:
    """`concurrency` per company, `max_concurrency` in all: 6 companies x 2 would be 12, capped at 5."""
    import threading
    import time

    lock = threading.Lock()
    now: dict[str, int] = {}
    peak: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        company = request.url.path.split("/")[4]
        with lock:
            for key in (company, "*"):
                now[key] = now.get(key, 0) + 1
                peak[key] = max(peak.get(key, 0), now[key])
        time.sleep(0.02)
        with lock:
            for key in (company, "*"):
                now[key] -= 1
        return httpx.Response(200, json={"payload": [], "continuationToken": None})

    client = ApprovalMaxClient(
        "https://api.test", transport=httpx.MockTransport(handler), concurrency=2, max_concurrency=5
    )
    companies = [f"c{i}" for i in range(6)]
    assert client.in_flight(len(companies)) == 5 and client.in_flight(1) == 2

    def read(company: str) -> None:
        for _ in range(4):
            list(client.documents(company, "bills"))

    threads = [threading.Thread(target=read, args=(c,)) for c in companies for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak.pop("*") == 5  # the run's cap, reached
    assert max(peak.values()) == 2 and len(peak) == 6  # companies reach their own limit, never more
    assert client.stats.requests == 6 * 4 * 4


def test_the_run_holds_at_most_max_concurrency_connections_and_reuses_them() -> None:
    """Over real sockets: 24 threads of requests through a cap of 5 open at most 5 connections,
    each kept alive for the next request (one httpx client of one connection per slot)."""
    import http.server
    import threading

    peers: set[tuple[str, int]] = set()
    served = [0]
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with lock:
                peers.add(self.client_address)
                served[0] += 1
            body = b'{"payload": [], "continuationToken": null}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = ApprovalMaxClient(f"http://127.0.0.1:{server.server_port}", concurrency=2, max_concurrency=5)
        threads = [
            threading.Thread(target=lambda c=c: [list(client.documents(c, "bills")) for _ in range(10)])
            for c in [f"c{i}" for i in range(6)]
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    assert served[0] == 240 == client.stats.requests
    assert 1 <= len(peers) <= 5  # connections opened: never more than the cap, kept alive between requests
