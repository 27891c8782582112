"""The seed documents' other two flows, on the same store and lock, against fakes that behave
as APSIS One's and Apiax's token guides say."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import jwt
import pytest

from approvalmax_pipeline.sources.oauth_tokens import (
    ClientCredentialsTokens,
    FileTokenStore,
    PasswordGrantTokens,
    ReauthorizationRequired,
    TokenEndpoint,
)

from ..fake_clock import FakeClock

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def jwt_expiring(at: datetime, n: int) -> str:
    return jwt.encode({"exp": int(at.timestamp()), "jti": n}, "k" * 32)


class FakeApsis:
    """JSON body; `exp` in the JWT (24 h) while the deprecated `expires_in` says otherwise;
    429 when called more than `limit` times."""

    def __init__(self, clock: list[datetime], limit: int = 100, throttle_first: int = 0) -> None:
        self.clock = clock
        self.limit = limit
        self.throttle_first = throttle_first
        self.calls = 0
        self.issued = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        assert request.headers["content-type"] == "application/json"
        body = json.loads(request.content)
        assert body == {"grant_type": "client_credentials", "client_id": "apsis-id", "client_secret": "apsis-secret"}
        if self.calls <= self.throttle_first or self.issued >= self.limit:
            return httpx.Response(429)
        self.issued += 1
        token = jwt_expiring(self.clock[0] + timedelta(hours=24), self.issued)
        return httpx.Response(200, json={"access_token": token, "expires_in": 60, "token_type": "Bearer"})


def apsis(tmp_path: Path, fake: FakeApsis, sleeps: list[float], clock: list[datetime]) -> ClientCredentialsTokens:
    endpoint = TokenEndpoint(
        "https://apsis.test/token",
        body="json",
        http=httpx.Client(transport=httpx.MockTransport(fake)),
        clock=FakeClock(slept=sleeps),
        resend_is_safe=False,
    )
    return ClientCredentialsTokens(
        endpoint,
        FileTokenStore(tmp_path / "apsis.json"),
        client_id="apsis-id",
        client_secret="apsis-secret",
        clock=FakeClock(read=lambda: clock[0]),
    )


def test_client_credentials_cached_until_jwt_exp_not_expires_in(tmp_path: Path) -> None:
    clock = [NOW]
    fake = FakeApsis(clock)
    tokens = apsis(tmp_path, fake, [], clock)
    first = tokens.access_token()
    clock[0] = NOW + timedelta(hours=2)  # expires_in (60 s) long past; exp (24 h) not
    assert tokens.access_token() == first
    clock[0] = NOW + timedelta(hours=23, minutes=56)  # within the 5-minute skew of exp
    assert tokens.access_token() != first
    assert fake.issued == 2


def test_client_credentials_shared_by_every_process_through_the_store(tmp_path: Path) -> None:
    clock = [NOW]
    fake = FakeApsis(clock)
    first = apsis(tmp_path, fake, [], clock).access_token()
    assert apsis(tmp_path, fake, [], clock).access_token() == first
    assert fake.issued == 1


def test_client_credentials_429_backs_off_exponentially(tmp_path: Path) -> None:
    clock = [NOW]
    fake = FakeApsis(clock, throttle_first=3)
    sleeps: list[float] = []
    apsis(tmp_path, fake, sleeps, clock).access_token()
    assert len(sleeps) == 3
    ceilings = [0.5 * 2**i for i in range(3)]
    assert all(c / 2 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))


def test_client_credentials_store_holds_no_secret(tmp_path: Path) -> None:
    clock = [NOW]
    apsis(tmp_path, FakeApsis(clock), [], clock).access_token()
    assert "apsis-secret" not in (tmp_path / "apsis.json").read_text()


class FakeApiax:
    """Keycloak as Apiax documents it: form body; password grant; refresh grant with
    `client_assertion_type`; `refresh_expires_in` seconds of refresh validity."""

    def __init__(self, clock: list[datetime], refresh_expires_in: int = 3600) -> None:
        self.clock = clock
        self.refresh_expires_in = refresh_expires_in
        self.grants: list[str] = []
        self.refresh_tokens: dict[str, datetime] = {}
        self.n = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        form = dict(parse_qsl(request.content.decode()))
        assert form["client_id"] == "integration-api"
        self.grants.append(form["grant_type"])
        now = self.clock[0]
        if form["grant_type"] == "password":
            if (form.get("username"), form.get("password")) != ("ann", "pw"):
                return httpx.Response(401, json={"error": "invalid_grant", "error_description": "Invalid user"})
        elif form["grant_type"] == "refresh_token":
            assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            assert "password" not in form
            ends = self.refresh_tokens.get(form["refresh_token"])
            if ends is None or (self.refresh_expires_in and now >= ends):
                return httpx.Response(400, json={"error": "invalid_grant", "error_description": "Token is not active"})
        else:
            return httpx.Response(400, json={"error": "unsupported_grant_type"})
        self.n += 1
        refresh = f"apiax-rt-{self.n}"
        self.refresh_tokens[refresh] = now + timedelta(seconds=self.refresh_expires_in)
        return httpx.Response(
            200,
            json={
                "access_token": jwt_expiring(now + timedelta(seconds=1800), self.n),
                "expires_in": 1800,
                "refresh_expires_in": self.refresh_expires_in,
                "refresh_token": refresh,
                "token_type": "bearer",
                "scope": "profile",
            },
        )


def apiax(tmp_path: Path, fake: FakeApiax, clock: list[datetime], password: str = "pw") -> PasswordGrantTokens:
    endpoint = TokenEndpoint("https://apiax.test/token", http=httpx.Client(transport=httpx.MockTransport(fake)))
    return PasswordGrantTokens(
        endpoint,
        FileTokenStore(tmp_path / "apiax.json"),
        client_id="integration-api",
        username="ann",
        password=password,
        clock=FakeClock(read=lambda: clock[0]),
    )


def test_password_grant_first_then_refresh_with_client_assertion_type(tmp_path: Path) -> None:
    clock = [NOW]
    fake = FakeApiax(clock)
    tokens = apiax(tmp_path, fake, clock)
    first = tokens.access_token()
    clock[0] = NOW + timedelta(minutes=29)  # access token (30 min) near its end, refresh token (1 h) fine
    assert tokens.access_token() != first
    assert fake.grants == ["password", "refresh_token"]
    stored = json.loads((tmp_path / "apiax.json").read_text())
    assert stored["refresh_token"] == "apiax-rt-2"
    assert "pw" not in json.dumps(stored)


def test_refresh_expired_per_refresh_expires_in_goes_straight_to_password(tmp_path: Path) -> None:
    clock = [NOW]
    fake = FakeApiax(clock, refresh_expires_in=600)
    tokens = apiax(tmp_path, fake, clock)
    tokens.access_token()
    clock[0] = NOW + timedelta(minutes=40)  # both expired; no doomed refresh attempt is made
    tokens.access_token()
    assert fake.grants == ["password", "password"]


def test_refresh_refused_falls_back_to_password(tmp_path: Path) -> None:
    clock = [NOW]
    fake = FakeApiax(clock, refresh_expires_in=0)  # 0: no known end, so it is tried
    tokens = apiax(tmp_path, fake, clock)
    tokens.access_token()
    fake.refresh_tokens.clear()  # the server forgot the session
    clock[0] = NOW + timedelta(minutes=31)
    tokens.access_token()
    assert fake.grants == ["password", "refresh_token", "password"]


def test_wrong_password_asks_for_new_credentials(tmp_path: Path) -> None:
    clock = [NOW]
    with pytest.raises(ReauthorizationRequired, match="username or password"):
        apiax(tmp_path, FakeApiax(clock), clock, password="nope").access_token()
