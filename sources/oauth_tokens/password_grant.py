"""Password grant with a form body, renewed by the refresh-token grant (Apiax's Keycloak flow)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from ..clock import SYSTEM_CLOCK, Clock
from .endpoint import TokenEndpoint, TokenResponse
from .errors import OAuthError, ReauthorizationRequired, TokenEndpointError
from .record import TokenRecord
from .store import TokenStore
from .stored import StoredTokens, access_token_expiry

log = logging.getLogger(__name__)

JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class PasswordGrantTokens(StoredTokens):
    """Gets tokens with username and password, then renews them with the refresh token
    (sending `client_assertion_type`) while `refresh_expires_in` says it is usable; past
    that, or when the refresh token is refused, signs in with the password again."""

    def __init__(
        self,
        endpoint: TokenEndpoint,
        store: TokenStore,
        *,
        client_id: str,
        username: str,
        password: str,
        skew: timedelta = timedelta(minutes=2),
        clock: Clock = SYSTEM_CLOCK,
        observer: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(endpoint, store, client_id=client_id, skew=skew, clock=clock, observer=observer)
        self.username = username
        self._password = password

    def _obtain(self, record: TokenRecord) -> TokenRecord:
        now = self.clock.now()
        if record.refresh_token and self._refresh_usable(record, now):
            try:
                response = self._grant(
                    {
                        "grant_type": "refresh_token",
                        "client_assertion_type": JWT_BEARER_ASSERTION,
                        "client_id": self.client_id,
                        "refresh_token": record.refresh_token,
                    }
                )
                return self._record(record, response, now)
            except OAuthError as exc:
                if exc.error != "invalid_grant":
                    raise TokenEndpointError(str(exc)) from exc
                log.info("refresh token refused; signing in with the password again")
        try:
            response = self._grant(
                {
                    "grant_type": "password",
                    "client_id": self.client_id,
                    "username": self.username,
                    "password": self._password,
                }
            )
        except OAuthError as exc:
            if exc.error in ("invalid_grant", "invalid_client", "unauthorized_client"):
                raise ReauthorizationRequired(
                    f"the token endpoint refused the username or password ({exc.error}): check them"
                ) from exc
            raise TokenEndpointError(str(exc)) from exc
        return self._record(TokenRecord(authorized_at=now), response, now)

    def _refresh_usable(self, record: TokenRecord, now: datetime) -> bool:
        # No known end (refresh_expires_in absent or 0): try it, and fall back if refused.
        end = record.refresh_token_expires_at
        return end is None or end - self.skew > now

    def _record(self, record: TokenRecord, response: TokenResponse, now: datetime) -> TokenRecord:
        refresh_ends = now + timedelta(seconds=response.refresh_expires_in) if response.refresh_expires_in else None
        rotated = response.refresh_token is not None
        return TokenRecord(
            refresh_token=response.refresh_token or record.refresh_token,
            refresh_token_obtained_at=now if rotated else record.refresh_token_obtained_at,
            refresh_token_expires_at=refresh_ends if rotated else record.refresh_token_expires_at,
            access_token=response.access_token,
            access_token_expires_at=access_token_expiry(response, now),
            scope=response.scope,
            authorized_at=record.authorized_at or now,
            refresh_count=record.refresh_count + 1,
        )
