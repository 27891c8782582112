"""The sandbox's fault knobs make the faults they name, over real HTTP and without the CLI: the fault
matrix (tests/e2e/test_faults.py, in the slow tier) trusts them to, and make test checks them here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from approvalmax_pipeline.sandbox import Sandbox

from ..conftest import running_sandbox


@pytest.fixture
def server() -> Iterator[Sandbox]:
    with running_sandbox(2, 120) as made:
        yield made


def token_form(server: Sandbox, refresh_token: str) -> dict[str, str]:
    return {
        "grant_type": "refresh_token",
        "client_id": server.identity.client_id,
        "client_secret": server.identity.client_secret,
        "refresh_token": refresh_token,
    }


def refresh(server: Sandbox, refresh_token: str) -> httpx.Response:
    return httpx.post(f"{server.url}/connect/token", data=token_form(server, refresh_token), timeout=10)


@pytest.fixture
def api(server: Sandbox) -> Iterator[httpx.Client]:
    """A client holding a valid access token; one connection per request, as resets close them."""
    answer = refresh(server, server.identity.issue_refresh_token())
    assert answer.status_code == 200, answer.text
    headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    transport = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
    with httpx.Client(base_url=server.url, headers=headers, timeout=10, transport=transport) as client:
        yield client


def bills(server: Sandbox, company: int = 0) -> str:
    return f"/api/v1/companies/{server.dataset.companies[company].company_id}/xero/bills"


def configure(server: Sandbox, **knobs: Any) -> None:
    answer = httpx.post(f"{server.url}/_sandbox/config", json=knobs, timeout=10)
    assert answer.status_code == 200, answer.text


def by_status(server: Sandbox) -> dict[str, int]:
    return httpx.get(f"{server.url}/_sandbox/stats", timeout=10).json()["by_status"]  # type: ignore[no-any-return]


def test_the_default_sandbox_serves_a_page(server: Sandbox, api: httpx.Client) -> None:
    page = api.get(bills(server), params={"limit": "100"})
    assert page.status_code == 200 and len(page.json()["payload"]) > 0


def test_throttle_rate_answers_429_with_the_configured_retry_after(server: Sandbox, api: httpx.Client) -> None:
    configure(server, throttle_rate=1.0, retry_after_seconds=7)
    answer = api.get(bills(server))
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
    assert by_status(server)["429"] == 1


def test_error_rate_answers_503_problems(server: Sandbox, api: httpx.Client) -> None:
    configure(server, error_rate=1.0)
    answer = api.get(bills(server))
    assert answer.status_code == 503 and answer.json()["title"] == "Service Unavailable"


def test_reset_rate_drops_the_connection_without_an_answer(server: Sandbox, api: httpx.Client) -> None:
    configure(server, reset_rate=1.0)
    with pytest.raises(httpx.TransportError):
        api.get(bills(server))
    assert by_status(server)["0"] == 1


def test_truncate_rate_sends_half_the_body_then_resets(server: Sandbox, api: httpx.Client) -> None:
    configure(server, truncate_rate=1.0)
    with pytest.raises(httpx.TransportError):
        api.get(bills(server))


def test_slow_rate_holds_the_answer_past_a_client_timeout(server: Sandbox, api: httpx.Client) -> None:
    configure(server, slow_rate=1.0, slow_seconds=0.5)
    with pytest.raises(httpx.ReadTimeout):
        api.get(bills(server), timeout=0.1)


def test_rates_draw_from_the_fault_seed(server: Sandbox, api: httpx.Client) -> None:
    def statuses() -> list[int]:
        configure(server, error_rate=0.5, fault_seed=3)
        return [api.get(bills(server)).status_code for _ in range(12)]

    first = statuses()
    assert set(first) == {200, 503} and statuses() == first


def test_the_rate_limit_counts_per_company_in_a_sliding_window(server: Sandbox, api: httpx.Client) -> None:
    now = [1000.0]
    server.monotonic = lambda: now[0]
    configure(server, rate_limit_per_minute=2, rate_window_seconds=10.0)
    assert [api.get(bills(server)).status_code for _ in range(2)] == [200, 200]
    now[0] += 4.0
    refused = api.get(bills(server))
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "6"  # the first leaves the window
    assert api.get(bills(server, company=1)).status_code == 200  # another company has its own window
    now[0] += 6.0
    assert api.get(bills(server)).status_code == 200


def test_token_lose_next_rotates_on_the_server_but_the_answer_never_arrives(server: Sandbox) -> None:
    seed = server.identity.issue_refresh_token()
    configure(server, token_lose_next=1)
    with pytest.raises(httpx.TransportError):
        refresh(server, seed)
    assert server.identity.refresh_tokens[seed].superseded_at is not None  # rotated
    assert refresh(server, seed).status_code == 200  # the old token, inside its grace period
    assert server.identity.grants["refresh_token"] == 2


def test_token_error_rate_and_latency(server: Sandbox) -> None:
    configure(server, token_error_rate=1.0, token_latency=0.05)
    answer = refresh(server, server.identity.issue_refresh_token())
    assert answer.status_code == 503 and answer.json() == {"error": "temporarily_unavailable"}


def test_a_superseded_refresh_token_is_refused_after_the_grace(server: Sandbox) -> None:
    now = [5000.0]
    server.identity.clock = lambda: now[0]
    configure(server, refresh_grace=60.0)
    seed = server.identity.issue_refresh_token()
    assert refresh(server, seed).status_code == 200
    now[0] += 30.0
    assert refresh(server, seed).status_code == 200  # inside the grace
    now[0] += 31.0
    late = refresh(server, seed)
    assert late.status_code == 400 and late.json()["error_description"] == "refresh token already used"


def test_access_tokens_refused_after_reject_after_whatever_their_exp(server: Sandbox, api: httpx.Client) -> None:
    now = [server.identity.clock()]
    server.identity.clock = lambda: now[0]
    # the api fixture's token was issued before the clock stood still: on a busy machine over a second
    # before, so the window is wide enough for any setup and then passed
    configure(server, access_token_reject_after=30.0)
    assert api.get(bills(server)).status_code == 200
    now[0] += 31.0
    refused = api.get(bills(server))
    assert refused.status_code == 401 and refused.json() == {"error": "access token revoked"}


def test_unknown_knobs_and_bad_values_are_refused(server: Sandbox) -> None:
    assert httpx.post(f"{server.url}/_sandbox/config", json={"no_such_knob": 1}, timeout=10).status_code == 400
