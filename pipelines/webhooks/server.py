"""The listener's HTTP side: ApprovalMax's webhook POSTs into the durable queue, and health checks.

`POST /webhooks/approvalmax/<secret>` is the only path that changes anything; the secret is
compared in constant time with the current secret and, while ApprovalMax is moved to a new one,
the previous; a wrong one gets the same 404 as any unknown path. A body is
capped in size, the endpoint in rate, and the answer (2xx only once the events are on disk)
takes milliseconds, well within a webhook sender's timeout. Logs name ids, never contents.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from approvalmax_pipeline.pipelines.webhooks.queue import EventQueue
from approvalmax_pipeline.sources.approvalmax.webhooks import PayloadError, parse_payload

log = logging.getLogger(__name__)

WEBHOOK_PREFIX = "/webhooks/approvalmax/"
SECRET_PATH = re.compile("(" + re.escape(WEBHOOK_PREFIX) + r")[^\s?\"]*")
MAX_BODY_BYTES = 1_048_576
READ_TIMEOUT_SECONDS = 10.0


class RateLimit:
    """A token bucket: `rate` POSTs a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate, self._burst, self._clock = rate, float(burst), clock
        self._tokens, self._at = float(burst), clock()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


class WebhookServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        secrets: Sequence[str],
        queue: EventQueue,
        rate: RateLimit,
        ready: Callable[[], bool],
    ) -> None:
        super().__init__(address, WebhookHandler)
        if not secrets:
            raise ValueError("a webhook server needs at least one secret")
        self.secrets = tuple(secret.encode() for secret in secrets)  # the current one first
        self.queue = queue
        self.rate = rate
        self.ready = ready

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"


class WebhookHandler(BaseHTTPRequestHandler):
    server: WebhookServer
    protocol_version = "HTTP/1.1"
    timeout = READ_TIMEOUT_SECONDS

    def log_message(self, format: str, *args: Any) -> None:
        # the request line holds the secret path: it never reaches a log
        log.debug("%s %s", self.address_string(), SECRET_PATH.sub(r"\1<secret>", format % args))

    def answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self.answer(200, {"status": "ok", "queued": self._depth()})
        elif self.path == "/readyz":
            queued = self._depth()
            ready = queued is not None and self.server.ready()
            self.answer(200 if ready else 503, {"ready": ready, "queued": queued})
        else:
            self.answer(404, {"error": "not found"})

    def _depth(self) -> int | None:
        """The queue's depth, or None while a shared queue's server cannot be reached: the process
        is alive (/healthz), but not ready (/readyz)."""
        try:
            return self.server.queue.depth()
        except Exception as exc:
            log.warning("webhook queue unavailable: %s", exc)
            return None

    def do_POST(self) -> None:
        if not self._secret_matches():
            self._discard_body()
            self.answer(404, {"error": "not found"})
            return
        if not self.server.rate.allow():
            self._discard_body()
            self.answer(429, {"error": "too many requests"}, {"Retry-After": "1"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.answer(411, {"error": "Content-Length required"}, {"Connection": "close"})
            return
        if length < 0 or length > MAX_BODY_BYTES:
            self.answer(413, {"error": f"body over {MAX_BODY_BYTES} bytes"}, {"Connection": "close"})
            return
        body = self.rfile.read(length)
        try:
            events = parse_payload(body)
        except PayloadError as exc:
            log.warning("webhook refused (400): %s", exc)
            self.answer(400, {"error": str(exc)})
            return
        try:
            self.server.queue.append(events)
        except Exception as exc:  # nothing was queued: the sender retries on a 5xx
            log.error("webhook not queued (503): %s", exc)
            self.answer(503, {"error": "queue unavailable"})
            return
        for event in events:
            log.info("webhook %s %s %s %s", event.company_id, event.request_type, event.request_id, event.event_type)
        self.answer(200, {"queued": len(events)})

    def _secret_matches(self) -> bool:
        if not self.path.startswith(WEBHOOK_PREFIX):
            return False
        given = self.path[len(WEBHOOK_PREFIX) :].split("?", 1)[0].encode()
        # every secret is compared, so the time taken does not tell which one (if any) matched
        matches = [hmac.compare_digest(given, secret) for secret in self.server.secrets]
        if any(matches[1:]):
            log.info("webhook with the previous secret: move ApprovalMax's webhook to the new one")
        return any(matches)

    def _discard_body(self) -> None:
        """Read what was sent (up to the cap) so the connection stays in step."""
        try:
            length = min(int(self.headers.get("Content-Length", "0")), MAX_BODY_BYTES)
        except ValueError:
            length = 0
        if length > 0:
            self.rfile.read(length)
