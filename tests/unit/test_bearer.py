"""The httpx auth flow driven by hand: header, one refresh on 401 or 403, revoked connection."""

from __future__ import annotations

import httpx
import pytest

from approvalmax_pipeline.sources.oauth_tokens import BearerAuth, ConnectionRevoked


class Tokens:
    def __init__(self) -> None:
        self.calls: list[str | None] = []

    def access_token(self, rejected: str | None = None) -> str:
        self.calls.append(rejected)
        return "fresh" if rejected else "first"


def request() -> httpx.Request:
    return httpx.Request("GET", "https://api.test/x")


def test_sets_bearer_header_and_stops_on_success() -> None:
    tokens = Tokens()
    flow = BearerAuth(tokens).auth_flow(request())
    sent = next(flow)
    assert sent.headers["Authorization"] == "Bearer first"
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(200))
    assert tokens.calls == [None]


def test_401_refreshes_once_and_retries_once() -> None:
    tokens = Tokens()
    flow = BearerAuth(tokens).auth_flow(request())
    next(flow)
    retried = flow.send(httpx.Response(401))
    assert retried.headers["Authorization"] == "Bearer fresh"
    assert tokens.calls == [None, "first"]
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(200))


def test_401_with_a_fresh_token_means_the_connection_is_revoked() -> None:
    flow = BearerAuth(Tokens(), revoked_hint="Re-enable it.").auth_flow(request())
    next(flow)
    flow.send(httpx.Response(401))
    with pytest.raises(ConnectionRevoked, match=r"disabled or deleted\. Re-enable it\."):
        flow.send(httpx.Response(401))


@pytest.mark.parametrize("status", [400, 404, 429, 500])
def test_other_errors_pass_through_untouched(status: int) -> None:
    tokens = Tokens()
    flow = BearerAuth(tokens).auth_flow(request())
    next(flow)
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(status))
    assert tokens.calls == [None]


def test_403_refreshes_once_and_retries_once_like_401() -> None:
    tokens = Tokens()
    flow = BearerAuth(tokens).auth_flow(request())
    next(flow)
    assert flow.send(httpx.Response(403)).headers["Authorization"] == "Bearer fresh"
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(200))
    assert tokens.calls == [None, "first"]


@pytest.mark.parametrize(("first", "second"), [(403, 403), (401, 403), (403, 401)])
def test_403_with_a_fresh_token_means_the_connection_is_revoked(first: int, second: int) -> None:
    flow = BearerAuth(Tokens()).auth_flow(request())
    next(flow)
    flow.send(httpx.Response(first))
    with pytest.raises(ConnectionRevoked, match=rf"\({second}\): the connection was disabled or deleted"):
        flow.send(httpx.Response(second))
