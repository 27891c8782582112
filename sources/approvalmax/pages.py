"""Document list pages as the API sends them: the raw body and its envelope, parsed by nobody else.

The client needs only the envelope (`continuationToken`) to page on; what the documents become
(Arrow tables or rows) is the source's choice, made in `sinks.py`. The envelope is read from the
end of the body when the body has the usual shape `{"payload": [...], "continuationToken": ...}`,
which costs a few microseconds instead of a whole parse; any other shape is parsed whole.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import ApiResponseError

# In valid JSON a quote preceded by a comma opens a member name, and the member just before the
# final brace belongs to the outermost object: so this finds the top-level token exactly.
_HEAD = re.compile(rb'^\s*\{\s*"payload"\s*:\s*\[')
_TAIL = re.compile(rb',\s*"continuationToken"\s*:\s*(null|"(?:[^"\\]|\\.)*")\s*\}\s*$')
_TAIL_BYTES = 4096  # longer tokens than this take the whole parse


@dataclass(frozen=True)
class Page:
    """One page of one company's documents of one type."""

    body: bytes
    continuation_token: str | None
    requested_at: datetime  # when its first attempt went out: the cursor never passes the first page's
    # The documents, when reading the envelope took a whole parse (an unusual shape, an unpaged list).
    parsed: list[dict[str, Any]] | None = None

    def documents(self) -> list[dict[str, Any]]:
        """The page's documents as json parses them."""
        if self.parsed is not None:
            return self.parsed
        try:
            body = json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiResponseError(f"a document page is not valid JSON: {exc}") from exc
        return payload_of(body)


class NotAnEnvelope(Exception):
    """The body is not JSON (a cut or garbled answer): worth another request."""


def read_envelope(body: bytes, requested_at: datetime, path: str = "a document list") -> Page:
    """The page in `body`; NotAnEnvelope when it is not JSON, ApiResponseError when it is JSON of another shape."""
    tail = _TAIL.search(body, max(0, len(body) - _TAIL_BYTES))
    if tail is not None and _HEAD.match(body):
        token = json.loads(tail.group(1))
        return Page(body, token, requested_at)
    try:
        parsed = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NotAnEnvelope(str(exc)) from exc
    if isinstance(parsed, list):  # an unpaged answer: the whole list at once
        return Page(body, None, requested_at, payload_of({"payload": parsed}, path))
    documents = payload_of(parsed, path)
    token = parsed.get("continuationToken")
    if token is not None and not isinstance(token, str):
        raise ApiResponseError(f"GET {path} answered a continuationToken that is not text")
    return Page(body, token or None, requested_at, documents)


def payload_of(body: Any, path: str = "a document list") -> list[dict[str, Any]]:
    """The `payload` list of objects of a parsed page."""
    if not isinstance(body, dict) or not isinstance(body.get("payload"), list):
        raise ApiResponseError(f"GET {path} answered JSON without a `payload` list")
    return objects(body["payload"], path)


def objects(value: Any, path: str) -> list[dict[str, Any]]:
    """`value` when it is a list of JSON objects, as every list the API answers must be."""
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ApiResponseError(f"GET {path} answered JSON that is not a list of objects")
    return value
