"""Reusable OAuth token layer: token stores, grants and an httpx.Auth, independent of dlt."""

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
