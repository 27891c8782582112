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
