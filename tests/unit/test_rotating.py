"""Rotating refresh tokens against a fake token endpoint (httpx.MockTransport)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jwt
import pytest

from approvalmax_pipeline.sources.oauth_tokens import (
    ReauthorizationRequired,
    RotatingRefreshTokens,
    TokenEndpoint,
    TokenEndpointError,
    TokenRecord,
    TokenStoreError,
    fingerprint,
)

from ..fake_clock import FakeClock

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class MemoryStore:
    """A store that records the order of events, to prove the save comes before use."""

    location = "memory"

    def __init__(self, record: TokenRecord | None = None, fail_save: bool = False) -> None:
        self.record = record
        self.fail_save = fail_save
        self.events: list[str] = []

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.events.append("lock")
        yield
        self.events.append("unlock")

    def load(self) -> TokenRecord | None:
        self.events.append("load")
        return self.record

    def save(self, record: TokenRecord) -> None:
        if self.fail_save:
            raise TokenStoreError("cannot save tokens to memory: disk full")
        self.events.append(f"save:{record.refresh_token}")
        self.record = record


class FakeIdentity:
    """Rotates on every refresh; remembers which refresh tokens it was sent."""

    def __init__(self, lifetime: int = 3600, refuse: set[str] | None = None, rotate: bool = True) -> None:
        self.lifetime = lifetime
        self.refuse = refuse or set()
        self.rotate = rotate
        self.sent: list[str] = []
        self.counter = itertools.count(2)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        assert form["grant_type"] == "refresh_token" and form["client_secret"] == "secret"
        self.sent.append(form["refresh_token"])
        if form["refresh_token"] in self.refuse:
            return httpx.Response(400, json={"error": "invalid_grant"})
        n = next(self.counter)
        access = jwt.encode(
            {
                "exp": int((NOW + timedelta(seconds=self.lifetime)).timestamp()),
                "jti": n,
                "https://www.approvalmax.com/connection": "conn-1",
            },
            "k" * 32,
        )
        body: dict[str, Any] = {
            "access_token": access,
            "expires_in": self.lifetime,
            "token_type": "Bearer",
            "scope": "read offline_access",
        }
        if self.rotate:
            body["refresh_token"] = f"rt-{n}"
        return httpx.Response(200, json=body)


def make(
    identity: FakeIdentity, store: MemoryStore, seed: str | None = "rt-1", clock: list[datetime] | None = None
) -> RotatingRefreshTokens:
    times = clock or [NOW]
    endpoint = TokenEndpoint(
        "https://id.test/connect/token",
        http=httpx.Client(transport=httpx.MockTransport(identity)),
        clock=FakeClock(),
    )
    return RotatingRefreshTokens(
        endpoint,
        store,
        client_id="cid",
        client_secret="secret",
        seed_refresh_token=seed,
        clock=FakeClock(read=lambda: times[0]),
    )


def test_first_use_refreshes_with_the_seed_and_saves_before_handing_out() -> None:
    identity, store = FakeIdentity(), MemoryStore()
    tokens = make(identity, store)
    access = tokens.access_token()
    assert identity.sent == ["rt-1"]
    assert store.events == ["lock", "load", "save:rt-2", "unlock"]
    assert store.record is not None and store.record.access_token == access
    assert store.record.previous_refresh_token == "rt-1"
    assert store.record.previous_valid_until == NOW + timedelta(minutes=55)
    assert store.record.seed_fingerprint == fingerprint("rt-1")
    assert store.record.connection_id == "conn-1"


def test_valid_access_token_is_reused_without_a_refresh() -> None:
    identity, store = FakeIdentity(), MemoryStore()
    tokens = make(identity, store)
    first = tokens.access_token()
    assert tokens.access_token() == first
    assert make(identity, store).access_token() == first  # a second process reads it from the store
    assert identity.sent == ["rt-1"]


def test_refreshes_ahead_of_expiry_within_the_skew() -> None:
    identity, store = FakeIdentity(), MemoryStore()
    clock = [NOW]
    tokens = make(identity, store, clock=clock)
    first = tokens.access_token()
    clock[0] = NOW + timedelta(minutes=54)
    assert tokens.access_token() == first
    clock[0] = NOW + timedelta(minutes=56)  # less than 5 minutes left
    assert tokens.access_token() != first
    assert identity.sent == ["rt-1", "rt-2"]


def test_rejected_token_forces_a_refresh() -> None:
    identity, store = FakeIdentity(), MemoryStore()
    tokens = make(identity, store)
    first = tokens.access_token()
    assert tokens.access_token(rejected=first) != first
    assert identity.sent == ["rt-1", "rt-2"]


def test_another_process_already_rotated_so_no_second_refresh() -> None:
    identity, store = FakeIdentity(), MemoryStore()
    a, b = make(identity, store), make(identity, store)
    token_a = a.access_token()
    stale = token_a
    assert a.access_token(rejected=stale) != stale  # a refreshes again
    # b had nothing cached: it reads the store, finds a valid token, refreshes nothing
    assert b.access_token() == store.record.access_token  # type: ignore[union-attr]
    assert identity.sent == ["rt-1", "rt-2"]


def test_newest_refused_falls_back_to_previous_within_grace() -> None:
    stored = TokenRecord(
        refresh_token="rt-new",
        previous_refresh_token="rt-old",
        previous_valid_until=NOW + timedelta(minutes=30),
        seed_fingerprint=fingerprint("rt-1"),
    )
    identity = FakeIdentity(refuse={"rt-new"})
    store = MemoryStore(stored)
    make(identity, store).access_token()
    assert identity.sent == ["rt-new", "rt-old"]
    assert store.record is not None and store.record.refresh_token == "rt-2"


def test_previous_past_grace_is_not_tried_and_reauthorisation_is_asked() -> None:
    stored = TokenRecord(
        refresh_token="rt-new",
        previous_refresh_token="rt-old",
        previous_valid_until=NOW - timedelta(minutes=1),
        seed_fingerprint=fingerprint("rt-1"),
    )
    identity = FakeIdentity(refuse={"rt-new"})
    with pytest.raises(ReauthorizationRequired, match="refused \\(invalid_grant\\)"):
        make(identity, MemoryStore(stored)).access_token()
    assert identity.sent == ["rt-new"]


def test_answer_without_refresh_token_keeps_the_old_one() -> None:
    identity, store = FakeIdentity(rotate=False), MemoryStore()
    make(identity, store).access_token()
    assert store.record is not None
    assert store.record.refresh_token == "rt-1" and store.record.previous_refresh_token is None


def test_failed_save_stops_and_the_token_is_not_used() -> None:
    identity, store = FakeIdentity(), MemoryStore(fail_save=True)
    tokens = make(identity, store)
    with pytest.raises(TokenStoreError, match=r"NOT saved.*within that hour"):
        tokens.access_token()
    assert store.record is None


def test_changed_seed_starts_a_new_family() -> None:
    stored = TokenRecord(refresh_token="rt-9", seed_fingerprint=fingerprint("rt-1"))
    identity, store = FakeIdentity(), MemoryStore(stored)
    make(identity, store, seed="rt-fresh").access_token()
    assert identity.sent == ["rt-fresh"]


def test_same_seed_uses_the_stored_newest_token() -> None:
    stored = TokenRecord(refresh_token="rt-9", seed_fingerprint=fingerprint("rt-1"))
    identity, store = FakeIdentity(), MemoryStore(stored)
    make(identity, store, seed="rt-1").access_token()
    assert identity.sent == ["rt-9"]


def test_empty_store_and_no_seed_asks_for_login() -> None:
    with pytest.raises(ReauthorizationRequired, match="no refresh token"):
        make(FakeIdentity(), MemoryStore(), seed=None).access_token()


def test_invalid_client_is_a_reauthorisation_with_its_own_message() -> None:
    endpoint = TokenEndpoint(
        "https://id.test/t",
        http=httpx.Client(
            transport=httpx.MockTransport(lambda r: httpx.Response(401, json={"error": "invalid_client"}))
        ),
        clock=FakeClock(),
    )
    tokens = RotatingRefreshTokens(endpoint, MemoryStore(), client_id="c", client_secret="s", seed_refresh_token="x")
    with pytest.raises(ReauthorizationRequired, match="client id or secret"):
        tokens.access_token()


def test_token_endpoint_5xx_retried_then_reported() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503)

    endpoint = TokenEndpoint(
        "https://id.test/t", http=httpx.Client(transport=httpx.MockTransport(handler)), clock=FakeClock()
    )
    tokens = RotatingRefreshTokens(endpoint, MemoryStore(), client_id="c", client_secret="s", seed_refresh_token="x")
    with pytest.raises(TokenEndpointError, match="answered 503 after 5"):
        tokens.access_token()
    assert len(calls) == 5


def test_token_endpoint_429_honours_retry_after() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "4"}), FakeIdentity()])
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        return answer if isinstance(answer, httpx.Response) else answer(request)

    endpoint = TokenEndpoint(
        "https://id.test/t", http=httpx.Client(transport=httpx.MockTransport(handler)), clock=FakeClock(slept=sleeps)
    )
    RotatingRefreshTokens(
        endpoint,
        MemoryStore(),
        client_id="cid",
        client_secret="secret",
        seed_refresh_token="rt-1",
        clock=FakeClock(read=lambda: NOW),
    ).access_token()
    assert sleeps == [4.0]


def test_repr_shows_no_secret() -> None:
    tokens = make(FakeIdentity(), MemoryStore(), seed="rt-secret-seed")
    assert "secret" not in repr(tokens).replace("client_id", "")
