"""httpx auth: attach the bearer token; on a 401 get a new token and retry once."""

from __future__ import annotations

from collections.abc import Generator
from typing import Protocol

import httpx

from .errors import ConnectionRevoked


class AccessTokenSource(Protocol):
    """Anything that can hand out an access token and replace one the API refused."""

    def access_token(self, rejected: str | None = None) -> str: ...


class BearerAuth(httpx.Auth):
    """The httpx seam: the API client knows this class, never a token."""

    def __init__(self, tokens: AccessTokenSource, revoked_hint: str = "") -> None:
        self.tokens = tokens
        self.revoked_hint = revoked_hint

    def __repr__(self) -> str:
        return f"BearerAuth({self.tokens!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.tokens.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        fresh = self.tokens.access_token(rejected=token)
        request.headers["Authorization"] = f"Bearer {fresh}"
        response = yield request
        if response.status_code == 401:
            raise ConnectionRevoked(
                "the API refused a freshly issued access token (401): the connection was disabled "
                f"or deleted. {self.revoked_hint}".strip()
            )
