"""What a token store keeps: the newest refresh token, the one before it, and the current access token."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from .errors import TokenStoreError

FORMAT_VERSION = 1


def fingerprint(secret: str) -> str:
    """A one-way tag of a secret, so we can tell a changed seed token without storing it twice."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:32]


def _time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise TokenStoreError("token record holds a timestamp that is not a string")
    return datetime.fromisoformat(value)


@dataclass
class TokenRecord:
    """One token family. `repr=False` on every secret so a record never prints a token."""

    refresh_token: str | None = field(default=None, repr=False)
    refresh_token_obtained_at: datetime | None = None
    # The refresh token before the last rotation stays valid for a grace period.
    previous_refresh_token: str | None = field(default=None, repr=False)
    previous_valid_until: datetime | None = None
    # When the refresh token stops working, where the grant says (`refresh_expires_in`).
    refresh_token_expires_at: datetime | None = None
    access_token: str | None = field(default=None, repr=False)
    access_token_expires_at: datetime | None = None
    # Where the family came from: a fingerprint of the configured seed refresh token.
    seed_fingerprint: str | None = None
    # When the family started (first login or import): refresh tokens die 30 days after issue.
    authorized_at: datetime | None = None
    scope: str | None = None
    connection_id: str | None = None
    refresh_count: int = 0
    # The last time the token endpoint refused this family (invalid_grant, invalid_client), and
    # why; cleared by the next refresh that works. `auth status` reports it and exits 3.
    refused_at: datetime | None = None
    refused_reason: str | None = None
    # A refresh that worked after `authorized_at` + the family's documented lifetime: proof that
    # the lifetime slides with each refresh rather than counting from consent.
    sliding_seen_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        data["format"] = FORMAT_VERSION
        return data

    @classmethod
    def from_json(cls, data: Any) -> TokenRecord:
        if not isinstance(data, dict):
            raise TokenStoreError("token record is not a JSON object")
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        try:
            for key in (
                "refresh_token_obtained_at",
                "previous_valid_until",
                "access_token_expires_at",
                "authorized_at",
                "refresh_token_expires_at",
                "refused_at",
                "sliding_seen_at",
            ):
                values[key] = _time(values.get(key))
        except ValueError as exc:
            raise TokenStoreError("token record holds an unreadable timestamp") from exc
        for key in ("refresh_token", "previous_refresh_token", "access_token"):
            if values.get(key) is not None and not isinstance(values[key], str):
                raise TokenStoreError(f"token record field {key} is not a string")
        return cls(**values)
