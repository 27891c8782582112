"""Errors of the token layer; none of them ever carries a token or a secret."""

from __future__ import annotations

from ..errors import ConnectorError


class TokenError(ConnectorError):
    """Base of every token-layer failure."""


class ReauthorizationRequired(TokenError):
    """Nothing stored can get a token any more: a person has to authorise again."""


class ConnectionRevoked(ReauthorizationRequired):
    """A freshly issued token is refused: the connection was disabled or deleted."""


class TokenStoreError(TokenError):
    """The token store cannot be read, trusted or written."""


class TokenStoreUnusable(TokenStoreError):
    """The store holds something we must not use: corrupt, or readable by others. Left as it is."""


class TokenKeyError(TokenStoreUnusable):
    """The token key is malformed, missing for an encrypted store, or opens nothing in it. Left as it is."""


class TokenEndpointError(TokenError):
    """The token endpoint failed in a way retries did not cure (network, 5xx, bad answer)."""


class OAuthError(TokenError):
    """An RFC 6749 error answer (`invalid_grant`, `invalid_client`, ...) from the token endpoint."""

    def __init__(self, error: str, description: str | None, status_code: int) -> None:
        self.error = error
        self.description = description
        self.status_code = status_code
        text = f"token endpoint answered {status_code} {error}"
        super().__init__(f"{text}: {description}" if description else text)
