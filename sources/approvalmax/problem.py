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
    """Read `title`, `detail`, `instance` and ASP.NET's `error.parameters[]` from a Problem
    Details body when there is one: the specific reason is often only in `errorMessage`."""
    request = response.request
    path = request.url.path
    title: str | None = response.reason_phrase or None
    detail: str | None = None
    parameters: tuple[tuple[str, str], ...] = ()
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        parameters = invalid_parameters(body)
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
    reasons = [f"{name}: {message}" if name and name not in message else message for name, message in parameters]
    if reasons:
        detail = "; ".join(part for part in (detail, *reasons) if part)
    return ApiError(request.method, path, response.status_code, title, detail, tuple(n for n, _ in parameters if n))


def invalid_parameters(body: dict[str, object]) -> tuple[tuple[str, str], ...]:
    """(parameter name, errorMessage) pairs from `error.parameters[]`, each cleaned to one line."""
    error = body.get("error")
    listed = error.get("parameters") if isinstance(error, dict) else None
    found: list[tuple[str, str]] = []
    for parameter in listed if isinstance(listed, list) else ():
        if not isinstance(parameter, dict):
            continue
        name = parameter.get("name") or parameter.get("path")
        message = parameter.get("errorMessage")
        if isinstance(message, str) and message.strip():
            found.append((clean_text(str(name or ""), 80), clean_text(message, 160)))
    return tuple(found)
