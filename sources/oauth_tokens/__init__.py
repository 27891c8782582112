"""Reusable OAuth token layer: token stores, grants and an httpx.Auth, independent of dlt."""

from .bearer import AccessTokenSource, BearerAuth
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
from .record import TokenRecord, fingerprint
from .rotating import RotatingRefreshTokens
from .store import FileTokenStore, TokenStore

__all__ = [
    "AccessTokenSource",
    "BearerAuth",
    "ConnectionRevoked",
    "FileTokenStore",
    "OAuthError",
    "ReauthorizationRequired",
    "RotatingRefreshTokens",
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
