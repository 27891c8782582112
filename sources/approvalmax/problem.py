"""Turn an error response (ASP.NET Problem Details or anything else) into an ApiError."""

from __future__ import annotations

import json

import httpx

from .errors import ApiError

MAX_TEXT = 300


def clean_text(text: str, limit: int = MAX_TEXT) -> str:
    """One printable line, truncated: error bodies end up in terminals and logs."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def api_error(response: httpx.Response) -> ApiError:
    """Read `title`, `detail` and `instance` from a Problem Details body when there is one."""
    request = response.request
    path = request.url.path
    title: str | None = response.reason_phrase or None
    detail: str | None = None
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("title"), str):
            title = clean_text(body["title"])
        if isinstance(body.get("detail"), str):
            detail = clean_text(body["detail"])
        if isinstance(body.get("instance"), str) and body["instance"].startswith("/"):
            path = clean_text(body["instance"])
        if detail is None and isinstance(body.get("errors"), dict):
            detail = clean_text(json.dumps(body["errors"]))
    elif response.content:
        kind = response.headers.get("content-type", "").split(";")[0] or "unknown type"
        detail = f"({kind}) {clean_text(response.text, 160)}"
    return ApiError(request.method, path, response.status_code, title, detail)
