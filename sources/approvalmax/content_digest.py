"""Digests of what `companies` and `user_profiles` loaded for a company, kept as that company's
position: a run loads a company's rows only when the API's answer differs from the last one loaded.

Both lists come whole on every run (the API has no filter for them), so without this a quiet run
over a thousand companies would merge a thousand companies' rows again, all unchanged.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Changes when the rows made from the same answer would change (records.prepare_row): a new version
# then reloads every company once, so no row keeps the old shape.
ROWS_SHAPE = "1"
KIND = "sha256/"  # no document cursor (a timestamp) starts so
PREFIX = f"{KIND}{ROWS_SHAPE}:"


def digest(answer: Any) -> str:
    """The digest of an API answer as parsed JSON: equal answers, key order aside, digest equal."""
    text = json.dumps(answer, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return PREFIX + hashlib.sha256(text.encode()).hexdigest()


def is_digest(position: str | None) -> bool:
    """Whether a stored position is a digest (not a document cursor, which is a timestamp)."""
    return position is not None and position.startswith(KIND)
