"""The token endpoint: one POST per grant, retried with backoff while a retry is safe."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from ..clock import SYSTEM_CLOCK, Clock
from ..http_retry import RETRYABLE_EXCEPTIONS, Retry, RetryPolicy, is_retryable_status, parse_retry_after, with_retries
from .errors import OAuthError, TokenEndpointError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenResponse:
    """What a token endpoint granted. Secrets are hidden from repr."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_in: float | None = None
    refresh_expires_in: float | None = None
    scope: str | None = None
    token_type: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> TokenResponse:
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            raise TokenEndpointError("token endpoint answered without an access_token")
        refresh = data.get("refresh_token")
        scope = data.get("scope")
        return cls(
            access_token=data["access_token"],
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_in=_number(data.get("expires_in")),
            refresh_expires_in=_number(data.get("refresh_expires_in")),
            scope=" ".join(scope) if isinstance(scope, list) else scope,
            token_type=data.get("token_type"),
        )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class TokenEndpoint:
    """POSTs grants to one token URL. `resend_is_safe` says whether a request that may have
    reached the server can be sent again (true where the old refresh token has a grace period)."""

    def __init__(
        self,
        url: str,
        *,
        body: Literal["form", "json"] = "form",
        http: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        resend_is_safe: bool = True,
        clock: Clock = SYSTEM_CLOCK,
        timeout: float = 30.0,
    ) -> None:
        self.url = url
        self.body = body
        self._http = http or httpx.Client(timeout=timeout)
        self._owns_http = http is None
        self.retry = retry or RetryPolicy(max_attempts=5)
        self.resend_is_safe = resend_is_safe
        self._clock = clock
        self.requests = 0

    def __repr__(self) -> str:
        return f"TokenEndpoint({self.url!r})"

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def grant(self, params: Mapping[str, str], headers: Mapping[str, str] | None = None) -> TokenResponse:
        """POST one grant; parse the answer; raise OAuthError for RFC 6749 refusals."""

        def attempt(number: int) -> TokenResponse:
            self.requests += 1
            fields, accept = dict(params), _accept_json(headers)
            if self.body == "json":
                request = self._http.build_request("POST", self.url, json=fields, headers=accept)
            else:
                request = self._http.build_request("POST", self.url, data=fields, headers=accept)
            try:
                response = self._http.send(request)
            except RETRYABLE_EXCEPTIONS as exc:
                if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) or self.resend_is_safe:
                    raise Retry(type(exc).__name__) from exc
                raise TokenEndpointError(
                    f"token endpoint {self.url} unreachable after {number} attempt(s): {type(exc).__name__}"
                ) from exc
            if response.status_code == 200:
                try:
                    return TokenResponse.from_json(response.json())
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise TokenEndpointError(
                        f"token endpoint {self.url} answered 200 with a body that is not JSON"
                    ) from exc
            oauth = _oauth_error(response)
            if oauth is not None and response.status_code in (400, 401, 403):
                raise oauth
            if is_retryable_status(response.status_code) and (self.resend_is_safe or response.status_code == 429):
                wait = parse_retry_after(response.headers.get("Retry-After"))
                too_long = wait is not None and wait > self.retry.max_retry_after
                # A pause longer than we wait is replaced by our own backoff here: a refresh is cheap.
                raise Retry(
                    f"answered {response.status_code}", retry_after=None if too_long else wait, response=response
                )
            raise TokenEndpointError(
                f"token endpoint {self.url} answered {response.status_code} after {number} attempt(s)"
            )

        def give_up(last: Retry, attempts: int) -> BaseException:
            if last.response is not None:
                return TokenEndpointError(
                    f"token endpoint {self.url} answered {last.response.status_code} after {attempts} attempt(s)"
                )
            return TokenEndpointError(
                f"token endpoint {self.url} unreachable after {attempts} attempt(s): {last.reason}"
            )

        def on_retry(retry: Retry, number: int, delay: float) -> None:
            log.info("token endpoint %s: %s, retrying in %.1f s", self.url, retry.reason, delay)

        return with_retries(attempt, self.retry, give_up, clock=self._clock, on_retry=on_retry)


def _accept_json(headers: Mapping[str, str] | None) -> dict[str, str]:
    merged = {"Accept": "application/json"}
    merged.update(headers or {})
    return merged


def _oauth_error(response: httpx.Response) -> OAuthError | None:
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("error"), str):
        return None
    description = data.get("error_description")
    return OAuthError(data["error"], description[:300] if isinstance(description, str) else None, response.status_code)
