"""Read a JWT's claims without checking its signature: we only need to know when it expires."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jwt


def read_claims(token: str) -> dict[str, Any]:
    """The token's payload, or {} when it is not a JWT (opaque tokens are allowed)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


def expiry(token: str) -> datetime | None:
    """The `exp` claim as an aware UTC datetime; None when the token has none."""
    exp = read_claims(token).get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return datetime.fromtimestamp(exp, UTC)
    return None
