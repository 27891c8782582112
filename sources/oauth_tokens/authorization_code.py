"""The authorization-code flow: build the authorize URL, catch the redirect, check `state`."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from .errors import TokenError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class AuthorizationError(TokenError):
    """The browser step failed: refused, wrong state, or no code."""


@dataclass(frozen=True)
class AuthorizationRequest:
    authorize_url: str
    client_id: str
    redirect_uri: str
    scope: str
    state: str

    @property
    def url(self) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "scope": self.scope,
                "redirect_uri": self.redirect_uri,
                "state": self.state,
            }
        )
        return f"{self.authorize_url}?{query}"


def new_request(authorize_url: str, client_id: str, redirect_uri: str, scope: str) -> AuthorizationRequest:
    """A request with a fresh random `state` (24 URL-safe characters; ApprovalMax wants 16-32)."""
    return AuthorizationRequest(authorize_url, client_id, redirect_uri, scope, secrets.token_urlsafe(18))


def code_from_redirect(redirect_url: str, expected_state: str) -> str:
    """The code from the URL the browser was sent back to, after checking `state`."""
    query = parse_qs(urlsplit(redirect_url.strip()).query)
    if "error" in query:
        raise AuthorizationError(f"authorisation was refused: {query['error'][0]}")
    state = query.get("state", [""])[0]
    if not secrets.compare_digest(state, expected_state):
        raise AuthorizationError("the redirect's state does not match this login: start `auth login` again")
    code = query.get("code", [""])[0]
    if not code:
        raise AuthorizationError("the redirect URL has no code: paste the whole URL the browser ended on")
    return code


def is_loopback(redirect_uri: str) -> bool:
    parts = urlsplit(redirect_uri)
    return parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS


def wait_for_redirect(redirect_uri: str, timeout: float) -> str:
    """Serve the loopback redirect URI once and return the full URL the browser requested."""
    parts = urlsplit(redirect_uri)
    received: dict[str, str] = {}
    done = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if urlsplit(self.path).path != (parts.path or "/"):
                self.send_error(404)
                return
            received["url"] = f"{parts.scheme}://{parts.netloc}{self.path}"
            body = b"ApprovalMax authorisation received. You can close this window."
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            done.set()

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: the URL carries the one-time code."""

    server = HTTPServer((parts.hostname or "127.0.0.1", parts.port or 80), Handler)
    server.timeout = 0.5
    try:
        waited = 0.0
        while not done.is_set() and waited < timeout:
            server.handle_request()
            waited += server.timeout
    finally:
        server.server_close()
    if "url" not in received:
        raise AuthorizationError(f"no redirect reached {redirect_uri} within {timeout:.0f} s")
    return received["url"]
