"""httpx auth: attach the bearer token; on a 401 or 403 get a new token and retry once."""

from __future__ import annotations

from collections.abc import Generator
from typing import Protocol

import httpx

from .errors import ConnectionRevoked

# What an API may answer a token it no longer honours. ApprovalMax does not document which of
# the two a disabled connection gets, so both mean: refresh once, and if a fresh token is
# refused too, the connection is gone.
REFUSED = (401, 403)


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
        if response.status_code not in REFUSED:
            return
        fresh = self.tokens.access_token(rejected=token)
        request.headers["Authorization"] = f"Bearer {fresh}"
        response = yield request
        if response.status_code in REFUSED:
            raise ConnectionRevoked(
                f"the API refused a freshly issued access token ({response.status_code}): the connection was "
                f"disabled or deleted. {self.revoked_hint}".strip()
            )
