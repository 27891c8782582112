"""Reusable OAuth token layer: token stores, grants and an httpx.Auth, independent of dlt.

Importing this package loads neither httpx nor PyJWT (a CLI's `--help` needs only the errors):
its names are re-exported here on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bearer import AccessTokenSource, BearerAuth
    from .client_credentials import ClientCredentialsTokens
    from .endpoint import TokenEndpoint, TokenResponse
    from .errors import (
        ConnectionRevoked,
        OAuthError,
        ReauthorizationRequired,
        TokenEndpointError,
        TokenError,
        TokenStoreError,
        TokenStoreUnusable,
    )
    from .password_grant import PasswordGrantTokens
    from .record import TokenRecord, fingerprint
    from .rotating import RotatingRefreshTokens
    from .store import FileTokenStore, TokenStore
    from .stored import StoredTokens

_EXPORTS = {
    "AccessTokenSource": ".bearer",
    "BearerAuth": ".bearer",
    "ClientCredentialsTokens": ".client_credentials",
    "ConnectionRevoked": ".errors",
    "FileTokenStore": ".store",
    "OAuthError": ".errors",
    "PasswordGrantTokens": ".password_grant",
    "ReauthorizationRequired": ".errors",
    "RotatingRefreshTokens": ".rotating",
    "StoredTokens": ".stored",
    "TokenEndpoint": ".endpoint",
    "TokenEndpointError": ".errors",
    "TokenError": ".errors",
    "TokenRecord": ".record",
    "TokenResponse": ".endpoint",
    "TokenStore": ".store",
    "TokenStoreError": ".errors",
    "TokenStoreUnusable": ".errors",
    "fingerprint": ".record",
}

__all__ = [
    "AccessTokenSource",
    "BearerAuth",
    "ClientCredentialsTokens",
    "ConnectionRevoked",
    "FileTokenStore",
    "OAuthError",
    "PasswordGrantTokens",
    "ReauthorizationRequired",
    "RotatingRefreshTokens",
    "StoredTokens",
    "TokenEndpoint",
    "TokenEndpointError",
    "TokenError",
    "TokenRecord",
    "TokenResponse",
    "TokenStore",
    "TokenStoreError",
    "TokenStoreUnusable",
    "fingerprint",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
