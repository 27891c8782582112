"""What every grant flow shares: a cached token, a locked store, and saving before use."""

from __future__ import annotations

import abc
import contextlib
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from ..clock import SYSTEM_CLOCK, Clock
from . import jwt_claims
from .endpoint import TokenEndpoint, TokenResponse
from .errors import ReauthorizationRequired, TokenStoreError
from .record import TokenRecord
from .store import TokenStore

# Step names an observer sees during a token request (tests kill the process at each).
BEFORE_REQUEST = "before-request"
AFTER_RESPONSE = "after-response"
AFTER_SAVE = "after-save"


class StoredTokens(abc.ABC):
    """Hands out access tokens kept in a `TokenStore`.

    A new token is obtained only with the store locked and re-read (another process may
    have done it already), and saved before it is handed out: a crash never leaves a
    token in use that the store does not hold.
    """

    # Appended to a failed save: what the user can count on, and what to do.
    save_failure_hint = "the run stopped before using the new token: fix the store and run again"

    def __init__(
        self,
        endpoint: TokenEndpoint,
        store: TokenStore,
        *,
        client_id: str,
        skew: timedelta = timedelta(minutes=5),
        clock: Clock = SYSTEM_CLOCK,
        observer: Callable[[str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.store = store
        self.client_id = client_id
        self.skew = skew
        self.clock = clock
        self.observer = observer
        self._lock = threading.Lock()
        self._cached: TokenRecord | None = None
        self.token_requests = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client_id={self.client_id!r}, store={self.store.location!r})"

    def access_token(self, rejected: str | None = None) -> str:
        """A usable access token; `rejected` is one the API just refused, never handed out again."""
        with self._lock:
            cached = self._cached
            if cached is not None and self._usable(cached, rejected):
                assert cached.access_token is not None
                return cached.access_token
            with self.store.lock():
                stored = self.store.load()
                record = self._prepare(stored)
                if self._usable(record, rejected):
                    self._cached = record
                    assert record.access_token is not None
                    return record.access_token
                return self._refresh_locked(stored, record)

    def refresh_now(self) -> TokenRecord:
        """Obtain a new token whatever the cache holds (proves the client and the refresh token)."""
        with self._lock, self.store.lock():
            stored = self.store.load()
            self._refresh_locked(stored, self._prepare(stored))
            assert self._cached is not None
            return self._cached

    def _refresh_locked(self, stored: TokenRecord | None, record: TokenRecord) -> str:
        try:
            record = self._obtain(record)
        except ReauthorizationRequired as exc:
            self._remember_refusal(stored, record, exc)
            raise
        self._save(record)
        self._cached = record
        assert record.access_token is not None
        return record.access_token

    def _remember_refusal(self, stored: TokenRecord | None, tried: TokenRecord, exc: BaseException) -> None:
        """Mark the stored family refused, so `auth status` can say so; a family that is not the
        stored one (a new seed) is never written over the stored one."""
        if stored is None or stored.refresh_token != tried.refresh_token:
            return
        stored.refused_at = self.clock.now()
        stored.refused_reason = str(exc).split(":")[0][:200]
        with contextlib.suppress(TokenStoreError):  # the refusal itself is what the caller reports
            self.store.save(stored)

    def _prepare(self, record: TokenRecord | None) -> TokenRecord:
        """The record to work from (a flow may start a new one here)."""
        return record or TokenRecord()

    @abc.abstractmethod
    def _obtain(self, record: TokenRecord) -> TokenRecord:
        """Ask the token endpoint; return the record to save. Called with the store locked."""

    def _grant(self, params: dict[str, str]) -> TokenResponse:
        self._observe(BEFORE_REQUEST)
        response = self.endpoint.grant(params)
        self.token_requests += 1
        self._observe(AFTER_RESPONSE)
        return response

    def _usable(self, record: TokenRecord, rejected: str | None) -> bool:
        if not record.access_token or record.access_token == rejected:
            return False
        expires = record.access_token_expires_at
        return expires is None or expires - self.skew > self.clock.now()

    def _save(self, record: TokenRecord) -> None:
        try:
            self.store.save(record)
        except TokenStoreError as exc:
            raise TokenStoreError(f"{exc}. {self.save_failure_hint}") from exc
        self._observe(AFTER_SAVE)

    def _observe(self, step: str) -> None:
        if self.observer is not None:
            self.observer(step)


def access_token_expiry(response: TokenResponse, now: datetime) -> datetime | None:
    """The JWT `exp` claim first; `expires_in` only for tokens that are not JWTs."""
    expires = jwt_claims.expiry(response.access_token)
    if expires is None and response.expires_in is not None:
        expires = now + timedelta(seconds=response.expires_in)
    return expires
