"""Client-credentials grant with a JSON body, cached until the JWT `exp` (APSIS One's flow)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from ..clock import SYSTEM_CLOCK, Clock
from . import jwt_claims
from .endpoint import TokenEndpoint
from .errors import OAuthError, ReauthorizationRequired, TokenEndpointError
from .record import TokenRecord
from .store import TokenStore
from .stored import StoredTokens


class ClientCredentialsTokens(StoredTokens):
    """POST {grant_type, client_id, client_secret} as JSON. The token is cached in the
    store, shared by every process, until its `exp` claim (the deprecated `expires_in` is
    ignored), because the token endpoint is rate limited more strictly than the API: a 429
    there is retried with exponential back-off by the endpoint."""

    def __init__(
        self,
        endpoint: TokenEndpoint,
        store: TokenStore,
        *,
        client_id: str,
        client_secret: str,
        skew: timedelta = timedelta(minutes=5),
        clock: Clock = SYSTEM_CLOCK,
        observer: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(endpoint, store, client_id=client_id, skew=skew, clock=clock, observer=observer)
        self._client_secret = client_secret

    def _obtain(self, record: TokenRecord) -> TokenRecord:
        params = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self._client_secret}
        try:
            response = self._grant(params)
        except OAuthError as exc:
            if exc.error in ("invalid_client", "unauthorized_client"):
                raise ReauthorizationRequired(
                    f"the token endpoint refused the API key ({exc.error}): it was deleted or mistyped; "
                    "create a new one in the account settings"
                ) from exc
            raise TokenEndpointError(str(exc)) from exc
        return TokenRecord(
            access_token=response.access_token,
            access_token_expires_at=jwt_claims.expiry(response.access_token),
            scope=response.scope,
            authorized_at=record.authorized_at or self.clock.now(),
            refresh_count=record.refresh_count + 1,
        )
