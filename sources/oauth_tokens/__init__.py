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
        TokenKeyError,
        TokenStoreError,
        TokenStoreUnusable,
    )
    from .password_grant import PasswordGrantTokens
    from .record import TokenRecord, fingerprint
    from .rotating import RotatingRefreshTokens
    from .sealing import TokenSealing, new_key, parse_keys
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
    "TokenKeyError": ".errors",
    "TokenRecord": ".record",
    "TokenResponse": ".endpoint",
    "TokenSealing": ".sealing",
    "TokenStore": ".store",
    "TokenStoreError": ".errors",
    "TokenStoreUnusable": ".errors",
    "fingerprint": ".record",
    "new_key": ".sealing",
    "parse_keys": ".sealing",
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
    "TokenKeyError",
    "TokenRecord",
    "TokenResponse",
    "TokenSealing",
    "TokenStore",
    "TokenStoreError",
    "TokenStoreUnusable",
    "fingerprint",
    "new_key",
    "parse_keys",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
