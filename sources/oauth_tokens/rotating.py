"""Access tokens from a rotating refresh token: refresh ahead of expiry, under a lock, saving before use."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from . import jwt_claims
from .endpoint import TokenEndpoint, TokenResponse
from .errors import OAuthError, ReauthorizationRequired, TokenEndpointError, TokenStoreError
from .record import TokenRecord, fingerprint
from .store import TokenStore

log = logging.getLogger(__name__)

# OAuth errors after which no retry with the same inputs can succeed.
FATAL_OAUTH_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})


def utc_now() -> datetime:
    return datetime.now(UTC)


class RotatingRefreshTokens:
    """Hands out access tokens for one token family kept in a `TokenStore`.

    Every refresh happens with the store locked, after re-reading it (another process may
    have rotated already), and the new refresh token is saved before the new access token
    is handed out: a crash can lose at most a token the server will still honour in grace.
    """

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
        extra_params: dict[str, str] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.endpoint = endpoint
        self.store = store
        self.client_id = client_id
        self._client_secret = client_secret
        self._seed = seed_refresh_token or None
        self.skew = skew
        self.grace = grace
        self.reauthorize_hint = reauthorize_hint
        self.extra_params = dict(extra_params or {})
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: TokenRecord | None = None
        self.refreshes = 0

    def __repr__(self) -> str:
        return f"RotatingRefreshTokens(client_id={self.client_id!r}, store={self.store.location!r})"

    def access_token(self, rejected: str | None = None) -> str:
        """A usable access token; `rejected` is one the API just refused, never handed out again."""
        with self._lock:
            cached = self._cached
            if cached is not None and self._usable(cached, rejected):
                assert cached.access_token is not None
                return cached.access_token
            with self.store.lock():
                record = self._with_seed(self.store.load())
                if self._usable(record, rejected):
                    self._cached = record
                    assert record.access_token is not None
                    return record.access_token
                record = self._refresh(record)
                self._save(record)
                self._cached = record
                assert record.access_token is not None
                return record.access_token

    def exchange_code(self, code: str, redirect_uri: str) -> TokenRecord:
        """Finish a login: trade the one-time code for tokens and store them as a new family."""
        params = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
        }
        if self._client_secret:
            params["client_secret"] = self._client_secret
        try:
            response = self.endpoint.grant(params)
        except OAuthError as exc:
            raise ReauthorizationRequired(f"the authorisation code was refused ({exc.error}): log in again") from None
        return self._start_family(response)

    def import_refresh_token(self, refresh_token: str) -> TokenRecord:
        """Seed the store from an existing refresh token; refreshing at once proves it works."""
        with self._lock, self.store.lock():
            record = self._refresh(TokenRecord(refresh_token=refresh_token, authorized_at=self.clock()))
            record.seed_fingerprint = self._seed_tag()
            self._save(record)
            self._cached = record
            return record

    def _start_family(self, response: TokenResponse) -> TokenRecord:
        with self._lock, self.store.lock():
            now = self.clock()
            if not response.refresh_token:
                raise ReauthorizationRequired("no refresh token was granted: the offline_access scope is needed")
            record = self._next_record(
                TokenRecord(authorized_at=now, seed_fingerprint=self._seed_tag()),
                response.refresh_token,
                response,
                now,
            )
            # a login starts the family: there is no earlier refresh token to fall back on
            record.previous_refresh_token = None
            record.previous_valid_until = None
            record.refresh_token_obtained_at = now
            record.refresh_count = 0
            self._save(record)
            self._cached = record
            return record

    def _seed_tag(self) -> str | None:
        # The configured seed is marked as used, so a stale one in the config cannot
        # replace a family started by login or import; a changed one still will.
        return fingerprint(self._seed) if self._seed else None

    def current_record(self) -> TokenRecord | None:
        """The stored record, read under the lock (for status displays)."""
        with self.store.lock():
            return self.store.load()

    def _usable(self, record: TokenRecord, rejected: str | None) -> bool:
        if not record.access_token or record.access_token == rejected:
            return False
        expires = record.access_token_expires_at
        return expires is None or expires - self.skew > self.clock()

    def _with_seed(self, record: TokenRecord | None) -> TokenRecord:
        """Start a new family from the configured refresh token when it is new to the store."""
        if self._seed is not None:
            seed_tag = fingerprint(self._seed)
            if record is None or record.seed_fingerprint != seed_tag:
                if record is not None:
                    log.info("configured refresh token changed: starting a new token family")
                return TokenRecord(refresh_token=self._seed, seed_fingerprint=seed_tag, authorized_at=self.clock())
        if record is None or not record.refresh_token:
            raise ReauthorizationRequired(
                f"no refresh token in the token store {self.store.location}: {self.reauthorize_hint}"
            )
        return record

    def _refresh(self, record: TokenRecord) -> TokenRecord:
        now = self.clock()
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
                response = self.endpoint.grant(self._grant_params(refresh_token))
            except OAuthError as exc:
                if exc.error == "invalid_grant" and index + 1 < len(candidates):
                    log.info("newest refresh token refused; trying the previous one within its grace period")
                    continue
                if exc.error == "invalid_client":
                    raise ReauthorizationRequired(
                        "the token endpoint rejected the client id or secret (invalid_client): "
                        "check the configured client id and secret"
                    ) from None
                if exc.error in FATAL_OAUTH_ERRORS:
                    raise ReauthorizationRequired(
                        f"the refresh token was refused ({exc.error}): it expired, was revoked or was "
                        f"already used past its grace period; {self.reauthorize_hint}"
                    ) from None
                raise TokenEndpointError(str(exc)) from None
            self.refreshes += 1
            return self._next_record(record, refresh_token, response, now)
        raise AssertionError("unreachable: the loop returns or raises")

    def _grant_params(self, refresh_token: str) -> dict[str, str]:
        params = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": self.client_id}
        if self._client_secret:
            params["client_secret"] = self._client_secret
        params.update(self.extra_params)
        return params

    def _next_record(self, record: TokenRecord, used: str, response: TokenResponse, now: datetime) -> TokenRecord:
        newest = response.refresh_token or used
        rotated = newest != used
        claims = jwt_claims.read_claims(response.access_token)
        expires = jwt_claims.expiry(response.access_token)
        if expires is None and response.expires_in is not None:
            expires = now + timedelta(seconds=response.expires_in)
        connection = claims.get("https://www.approvalmax.com/connection")
        return replace(
            record,
            refresh_token=newest,
            refresh_token_obtained_at=now if rotated else record.refresh_token_obtained_at,
            previous_refresh_token=used if rotated else record.previous_refresh_token,
            previous_valid_until=now + self.grace if rotated else record.previous_valid_until,
            access_token=response.access_token,
            access_token_expires_at=expires,
            scope=response.scope or record.scope,
            connection_id=connection if isinstance(connection, str) else record.connection_id,
            authorized_at=record.authorized_at or now,
            refresh_count=record.refresh_count + 1,
        )

    def _save(self, record: TokenRecord) -> None:
        try:
            self.store.save(record)
        except TokenStoreError as exc:
            raise TokenStoreError(
                f"{exc}. The new refresh token was NOT saved, so it was not used; the previous one "
                "stays valid for about an hour: fix the store and run again within that hour"
            ) from None
