"""Access tokens from a rotating refresh token (ApprovalMax): refresh ahead, fall back in grace."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from ..clock import SYSTEM_CLOCK, Clock
from . import jwt_claims
from .endpoint import TokenEndpoint, TokenResponse
from .errors import OAuthError, ReauthorizationRequired, TokenEndpointError
from .record import TokenRecord, fingerprint
from .store import TokenStore
from .stored import StoredTokens, access_token_expiry

log = logging.getLogger(__name__)

# OAuth errors after which no retry with the same inputs can succeed.
FATAL_OAUTH_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})
CONNECTION_CLAIM = "https://www.approvalmax.com/connection"


class RotatingRefreshTokens(StoredTokens):
    """Refresh-token grant where every refresh rotates the refresh token and the previous
    one stays valid for a grace period. The family starts from a login, an import, or a
    configured seed refresh token."""

    save_failure_hint = (
        "The new refresh token was NOT saved, so it was not used; the previous one stays valid for "
        "about an hour: fix the store and run again within that hour"
    )

    def __init__(
        self,
        endpoint: TokenEndpoint,
        store: TokenStore,
        *,
        client_id: str,
        client_secret: str | None,
        seed_refresh_token: str | None = None,
        skew: timedelta = timedelta(minutes=5),
        grace: timedelta = timedelta(minutes=55),
        reauthorize_hint: str = "authorise again and store the new refresh token",
        family_lifetime: timedelta | None = None,
        clock: Clock = SYSTEM_CLOCK,
        observer: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(endpoint, store, client_id=client_id, skew=skew, clock=clock, observer=observer)
        self.family_lifetime = family_lifetime  # documented life of a family, to tell sliding from absolute
        self._client_secret = client_secret
        self._seed = seed_refresh_token or None
        self.grace = grace
        self.reauthorize_hint = reauthorize_hint

    @property
    def refreshes(self) -> int:
        return self.token_requests

    def exchange_code(self, code: str, redirect_uri: str) -> TokenRecord:
        """Finish a login: trade the one-time code for tokens and store them as a new family."""
        params = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        try:
            response = self._grant(self._with_client(params))
        except OAuthError as exc:
            raise ReauthorizationRequired(f"the authorisation code was refused ({exc.error}): log in again") from exc
        if not response.refresh_token:
            raise ReauthorizationRequired("no refresh token was granted: the offline_access scope is needed")
        with self._lock, self.store.lock():
            now = self.clock.now()
            record = self._next_record(TokenRecord(authorized_at=now), response.refresh_token, response, now)
            record.seed_fingerprint = self._seed_tag()
            record.refresh_token_obtained_at = now
            record.refresh_count = 0
            self._save(record)
            self._cached = record
            return record

    def import_refresh_token(self, refresh_token: str) -> TokenRecord:
        """Seed the store from an existing refresh token; refreshing at once proves it works."""
        with self._lock, self.store.lock():
            record = self._obtain(TokenRecord(refresh_token=refresh_token, authorized_at=self.clock.now()))
            record.seed_fingerprint = self._seed_tag()
            self._save(record)
            self._cached = record
            return record

    def _seed_tag(self) -> str | None:
        # The configured seed is marked as used, so a stale one in the config cannot
        # replace a family started by login or import; a changed one still will.
        return fingerprint(self._seed) if self._seed else None

    def _prepare(self, record: TokenRecord | None) -> TokenRecord:
        """Start a new family from the configured refresh token when it is new to the store."""
        if self._seed is not None:
            seed_tag = fingerprint(self._seed)
            if record is None or record.seed_fingerprint != seed_tag:
                if record is not None:
                    log.info("configured refresh token changed: starting a new token family")
                return TokenRecord(refresh_token=self._seed, seed_fingerprint=seed_tag, authorized_at=self.clock.now())
        if record is None or not record.refresh_token:
            location = self.store.location
            raise ReauthorizationRequired(f"no refresh token in the token store {location}: {self.reauthorize_hint}")
        return record

    def _obtain(self, record: TokenRecord) -> TokenRecord:
        now = self.clock.now()
        candidates = [record.refresh_token]
        if (
            record.previous_refresh_token
            and record.previous_valid_until is not None
            and now < record.previous_valid_until
        ):
            candidates.append(record.previous_refresh_token)
        for index, refresh_token in enumerate(candidates):
            assert refresh_token is not None
            try:
                response = self._grant(
                    self._with_client({"grant_type": "refresh_token", "refresh_token": refresh_token})
                )
            except OAuthError as exc:
                if exc.error == "invalid_grant" and index + 1 < len(candidates):
                    log.info("newest refresh token refused; trying the previous one within its grace period")
                    continue
                if exc.error == "invalid_client":
                    raise ReauthorizationRequired(
                        "the token endpoint rejected the client id or secret (invalid_client): "
                        "check the configured client id and secret"
                    ) from exc
                if exc.error in FATAL_OAUTH_ERRORS:
                    raise ReauthorizationRequired(
                        f"the refresh token was refused ({exc.error}): it expired, was revoked or was "
                        f"already used past its grace period; {self.reauthorize_hint}"
                    ) from exc
                raise TokenEndpointError(str(exc)) from exc
            return self._next_record(record, refresh_token, response, now)
        raise AssertionError("unreachable: the loop returns or raises")

    def _with_client(self, params: dict[str, str]) -> dict[str, str]:
        params = {**params, "client_id": self.client_id}
        if self._client_secret:
            params["client_secret"] = self._client_secret
        return params

    def _next_record(self, record: TokenRecord, used: str, response: TokenResponse, now: datetime) -> TokenRecord:
        newest = response.refresh_token or used
        rotated = newest != used
        connection = jwt_claims.read_claims(response.access_token).get(CONNECTION_CLAIM)
        authorized = record.authorized_at or now
        past_absolute = self.family_lifetime is not None and now > authorized + self.family_lifetime
        return replace(
            record,
            refresh_token=newest,
            refresh_token_obtained_at=now if rotated else record.refresh_token_obtained_at,
            previous_refresh_token=used if rotated else record.previous_refresh_token,
            previous_valid_until=now + self.grace if rotated else record.previous_valid_until,
            access_token=response.access_token,
            access_token_expires_at=access_token_expiry(response, now),
            scope=response.scope or record.scope,
            connection_id=connection if isinstance(connection, str) else record.connection_id,
            authorized_at=authorized,
            refresh_count=record.refresh_count + 1,
            refused_at=None,
            refused_reason=None,
            sliding_seen_at=record.sliding_seen_at or (now if past_absolute else None),
        )
