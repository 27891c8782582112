"""Record the API's raw answers for a bug report: the real shapes, with nothing personal in them.

Only API responses are recorded (never the token endpoint, never a request header, so never a
token). Personal and free-text values (names, e-mails, contacts, descriptions, comments, file
names, addresses, free-form field values) become stable pseudonyms: the same value gets the same
pseudonym throughout one recording, so joins and duplicates survive, but the key is random and
kept only in memory, so a pseudonym cannot be reversed. `approvalmax sandbox --replay DIR`
serves a recording.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any

import httpx

# Keys whose text is personal or free-form, wherever they appear.
PERSONAL_KEYS = frozenset(
    {
        "name",
        "firstName",
        "lastName",
        "email",
        "contact",
        "description",
        "comment",
        "fileName",
        "documentName",
        "attentionTo",
        "reference",
        "value",  # additionalInformation[].value: whatever a requester typed
    }
)
# Parts of key names that mark personal text in fields we have never seen.
PERSONAL_PARTS = ("email", "phone", "address", "comment", "note", "description", "name", "contact")
# Subtrees that hold codes, not people's words: their text stays (statuses must survive a replay).
KEPT_SUBTREES = frozenset({"requestStatus"})


class Pseudonyms:
    """Stable, irreversible stand-ins for personal text, under a key that is never written."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def of(self, field: str, text: str) -> str:
        digest = hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()[:12]
        if "@" in text:
            return f"user-{digest}@example.invalid"
        return f"{field}-{digest}"

    def scrub(self, value: Any, key: str = "", personal: bool = False) -> Any:
        """`value` with every string under a personal key replaced; the structure is kept."""
        if isinstance(value, dict):
            return {
                k: v if k in KEPT_SUBTREES else self.scrub(v, k, personal or is_personal(k)) for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.scrub(item, key, personal) for item in value]
        if isinstance(value, str) and (personal or is_personal(key)):
            return self.of(key or "text", value)
        return value


def is_personal(key: str) -> bool:
    if not key or key.endswith(("Id", "ID", "Ids")) or key in ("requestId", "companyId"):
        return False
    if key in PERSONAL_KEYS:
        return True
    lowered = key.lower()
    return any(part in lowered for part in PERSONAL_PARTS)


class Recorder:
    """An httpx response hook writing one JSON file per API response into `folder`."""

    def __init__(self, folder: Path, pseudonyms: Pseudonyms | None = None) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.pseudonyms = pseudonyms or Pseudonyms()
        self._lock = threading.Lock()
        self._count = len(list(folder.glob("*.json")))

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        request = response.request
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.url.params),
            "status": response.status_code,
            "content_type": response.headers.get("content-type", ""),
        }
        try:
            entry["json"] = self.pseudonyms.scrub(json.loads(response.content))
        except (json.JSONDecodeError, UnicodeDecodeError):
            # Not JSON (an HTML page, a cut body): kept only as its length, it may say anything.
            entry["text_length"] = len(response.content)
        with self._lock:
            self._count += 1
            path = self.folder / f"{self._count:06d}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(entry, indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, path)
