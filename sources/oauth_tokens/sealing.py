"""Tokens encrypted at rest: a record sealed with Fernet under the newest of several keys.

A store keeps one JSON value: a JSON object is a record in plain text (what every store held
before encryption, and still holds without a key); a JSON string is a Fernet token sealing that
object. Fernet (AES-128-CBC with HMAC-SHA256) is authenticated, so a wrong key or a changed byte
is refused, never read as a different record. Keys are given newest first: the newest seals, any
of them opens, so a key can be rotated without a moment when the store cannot be read.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ..errors import first_line
from .errors import TokenKeyError, TokenStoreError, TokenStoreUnusable
from .record import TokenRecord

log = logging.getLogger(__name__)

# Several keys in one setting: separated by commas or whitespace (a Fernet key holds neither).
_SEPARATORS = re.compile(r"[\s,]+")


def new_key() -> str:
    """A fresh random key: 32 bytes, URL-safe base64, as Fernet takes it."""
    return Fernet.generate_key().decode()


def parse_keys(value: str | None) -> tuple[str, ...]:
    """The keys in a setting, newest first; none for an empty or missing one."""
    return tuple(part for part in _SEPARATORS.split(value or "") if part)


@dataclass(frozen=True)
class Opened:
    """A record read from a store, and whether the store holds it in the form `seal` writes now."""

    record: TokenRecord
    current: bool


class TokenSealing:
    """How a store turns a record into the value it keeps, and back.

    With no keys, records are kept in plain text as before. `setting` names where the keys come
    from, for messages; no message ever holds a key or a token.
    """

    def __init__(self, keys: tuple[str, ...] | list[str] = (), setting: str = "the token key") -> None:
        self.setting = setting
        self.key_count = len(keys)
        fernets: list[Fernet] = []
        for number, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode()))
            except (ValueError, TypeError):
                raise TokenKeyError(
                    f"{setting}: key {number} of {len(keys)} is not a Fernet key (32 bytes, URL-safe base64, "
                    "44 characters); make a new one and give it first"
                ) from None  # the cause would quote the key
        self._newest = fernets[0] if fernets else None
        self._older = MultiFernet(fernets[1:]) if len(fernets) > 1 else None

    @property
    def encrypted(self) -> bool:
        return self._newest is not None

    def seal(self, record: TokenRecord) -> Any:
        """The JSON value to store: the record's object, sealed under the newest key when there is one."""
        data = record.to_json()
        if self._newest is None:
            _say_unencrypted_once(self.setting)
            return data
        return self._newest.encrypt(json.dumps(data, sort_keys=True).encode()).decode()

    def open(self, value: Any, location: str) -> Opened:
        """The record in a stored JSON value; raises TokenStoreUnusable (leaving the store as it is)
        when it cannot be read with the keys given."""
        if not isinstance(value, str):
            return Opened(self._record(value, location), current=self._newest is None)
        if self._newest is None:
            raise TokenKeyError(
                f"the token store {location} is encrypted and no key is configured: set {self.setting} "
                "to the key it was encrypted with; the store was left as it is"
            )
        for fernet in (self._newest, self._older):
            if fernet is None:
                continue
            try:
                plain = fernet.decrypt(value.encode())
            except InvalidToken:
                continue
            try:
                data = json.loads(plain)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise TokenStoreUnusable(
                    f"the token store {location} decrypts to no JSON; it was left as it is"
                ) from exc
            return Opened(self._record(data, location), current=fernet is self._newest)
        raise TokenKeyError(
            f"none of the {self.key_count} key(s) in {self.setting} opens the token store {location} (a wrong "
            "key, or the store was changed): give the key it was encrypted with; the store was left as it is"
        )

    @staticmethod
    def _record(data: Any, location: str) -> TokenRecord:
        try:
            return TokenRecord.from_json(data)
        except TokenStoreError as exc:
            raise TokenStoreUnusable(
                f"the token store {location} is not a token record ({exc}); it was left as it is"
            ) from exc


PLAIN = TokenSealing()
_SAID: set[str] = set()


def _say_unencrypted_once(setting: str) -> None:
    if setting not in _SAID:
        _SAID.add(setting)
        log.info("tokens are stored unencrypted: set %s to encrypt them at rest", setting)


def rewrite_in_current_form(opened: Opened, save: Callable[[TokenRecord], None], location: str) -> None:
    """Save a record read in an older form (plain text, or sealed under an older key) in the form
    `seal` writes now. Call it with the store locked. The save is atomic, so a crash leaves either
    form, both readable; a failed save leaves the older form, which still opens, and is only logged."""
    if opened.current:
        return
    try:
        save(opened.record)
    except TokenStoreError as exc:
        log.warning("the token store %s stays in its older form: %s", location, first_line(exc))
        return
    log.info("the token store %s was rewritten under the newest key", location)
