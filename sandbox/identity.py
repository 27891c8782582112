"""The sandbox's identity server: authorization codes, rotating refresh tokens with a grace period, JWTs."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt

ISSUER = "https://identity.sandbox.approvalmax.local"
CONNECTION_CLAIM = "https://www.approvalmax.com/connection"
READ_SCOPE = "https://www.approvalmax.com/scopes/public_api/read"


@dataclass
class RefreshTokenState:
    issued_at: float
    connection_id: str
    scope: str
    superseded_at: float | None = None


@dataclass
class IdentityKnobs:
    access_token_lifetime: float = 3600.0
    refresh_token_lifetime: float = 30 * 86_400.0
    refresh_grace: float = 3600.0
    # Refuse access tokens older than this many seconds whatever their `exp` says, as a
    # server does after revoking them early (0: off).
    access_token_reject_after: float = 0.0


@dataclass
class Identity:
    """Everything the token endpoint knows. Thread-safe; `clock` is the one time seam."""

    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"
    knobs: IdentityKnobs = field(default_factory=IdentityKnobs)
    clock: Callable[[], float] = time.time
    signing_key: str = field(default_factory=lambda: secrets.token_hex(32))
    refresh_tokens: dict[str, RefreshTokenState] = field(default_factory=dict)
    codes: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    grants: dict[str, int] = field(default_factory=dict)
    disabled_connections: set[str] = field(default_factory=set)
    deleted_connections: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def issue_refresh_token(self, scope: str = f"{READ_SCOPE} offline_access") -> str:
        """A refresh token for a new connection, as if a user had just authorised."""
        token = secrets.token_hex(32).upper()
        with self._lock:
            self.refresh_tokens[token] = RefreshTokenState(self.clock(), str(uuid.uuid4()), scope)
        return token

    def authorize(self, params: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        """Auto-approve: redirect to `redirect_uri` with a code and the caller's `state`."""
        if params.get("response_type") != "code":
            return 400, {}, {"error": "unsupported_response_type"}
        if params.get("client_id") != self.client_id:
            return 400, {}, {"error": "invalid_client"}
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri:
            return 400, {}, {"error": "invalid_request", "error_description": "redirect_uri missing"}
        code = secrets.token_urlsafe(24)
        with self._lock:
            self.codes[code] = (redirect_uri, params.get("scope", READ_SCOPE), self.clock() + 300)
        query = {"code": code, "scope": params.get("scope", READ_SCOPE)}
        if "state" in params:
            query["state"] = params["state"]
        separator = "&" if "?" in redirect_uri else "?"
        return 302, {"Location": f"{redirect_uri}{separator}{urlencode(query)}"}, None

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The token endpoint: (status, JSON body)."""
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client"}
        grant = form.get("grant_type")
        with self._lock:
            self.grants[grant or ""] = self.grants.get(grant or "", 0) + 1
            now = self.clock()
            if grant == "authorization_code":
                entry = self.codes.pop(form.get("code", ""), None)
                if entry is None or entry[2] < now or entry[0] != form.get("redirect_uri"):
                    return 400, {"error": "invalid_grant", "error_description": "code invalid, used or expired"}
                state = RefreshTokenState(now, str(uuid.uuid4()), entry[1])
            elif grant == "refresh_token":
                old = self.refresh_tokens.get(form.get("refresh_token", ""))
                if old is None:
                    return 400, {"error": "invalid_grant", "error_description": "unknown refresh token"}
                if old.connection_id in self.deleted_connections:
                    return 400, {"error": "invalid_grant", "error_description": "connection deleted"}
                if now > old.issued_at + self.knobs.refresh_token_lifetime:
                    return 400, {"error": "invalid_grant", "error_description": "refresh token expired"}
                if old.superseded_at is not None and now > old.superseded_at + self.knobs.refresh_grace:
                    return 400, {"error": "invalid_grant", "error_description": "refresh token already used"}
                if old.superseded_at is None:
                    old.superseded_at = now
                state = RefreshTokenState(now, old.connection_id, old.scope)
            else:
                return 400, {"error": "unsupported_grant_type"}
            refresh_token = secrets.token_hex(32).upper()
            self.refresh_tokens[refresh_token] = state
        return 200, {
            "access_token": self._access_token(state, now),
            "expires_in": int(self.knobs.access_token_lifetime),
            "token_type": "Bearer",
            "refresh_token": refresh_token,
            "scope": state.scope,
        }

    def _access_token(self, state: RefreshTokenState, now: float) -> str:
        claims = {
            "nbf": int(now),
            "iat": int(now),
            "exp": int(now + self.knobs.access_token_lifetime),
            "iss": ISSUER,
            "client_id": self.client_id,
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, state.connection_id)),
            CONNECTION_CLAIM: state.connection_id,
            "jti": secrets.token_hex(16),
            "scope": state.scope.split(),
        }
        return jwt.encode(claims, self.signing_key, algorithm="HS256")

    def check_access_token(self, header: str | None) -> str | None:
        """None when the bearer token is good, else why it is not."""
        if not header or not header.startswith("Bearer "):
            return "missing bearer token"
        try:
            claims = jwt.decode(header[7:], self.signing_key, algorithms=["HS256"], leeway=0)
        except jwt.ExpiredSignatureError:
            return "access token expired"
        except jwt.PyJWTError:
            return "invalid access token"
        reject_after = self.knobs.access_token_reject_after
        if reject_after and self.clock() - float(claims.get("iat", 0)) > reject_after:
            return "access token revoked"
        connection = claims.get(CONNECTION_CLAIM)
        if connection in self.disabled_connections or connection in self.deleted_connections:
            return "connection disabled or deleted"
        return None

    def revoke_all(self, delete: bool) -> None:
        """Disable every connection (access tokens stop working; refreshing still answers) or
        delete it (refresh tokens die too), as the Connections page does."""
        with self._lock:
            target = self.deleted_connections if delete else self.disabled_connections
            target.update(s.connection_id for s in self.refresh_tokens.values())

    def enable_all(self) -> None:
        with self._lock:
            self.disabled_connections.clear()
