"""The sandbox HTTP server: ApprovalMax's identity and API endpoints over real HTTP, with fault knobs."""

from __future__ import annotations

import base64
import collections
import contextlib
import functools
import hashlib
import json
import random
import re
import secrets
import socket
import struct
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from .data import TYPE_WEIGHTS, Dataset, parse_filter_time
from .identity import Identity, IdentityKnobs
from .replay import Replay
from .variants import check_knob, invalid_parameter, is_missing, problem_body, shape_company, shape_document

PAGE_CAP = 100
LIST_PARAMS = frozenset(
    {"limit", "continuationToken", "modifiedAtOrAfter", "createdAtOrAfter", "decidedAtOrAfter", "requestStatus"}
)
STATUSES = frozenset({"draft", "onApproval", "approved", "rejected", "cancelled"})
_COMPANY_ROUTE = re.compile(r"^/api/v1/companies/(?P<company>[^/]+)/(?P<rest>.+)$")


@dataclass
class SandboxKnobs:
    """Faults and limits; every field can be changed at run time with POST /_sandbox/config."""

    latency: float = 0.0  # seconds added to every API request
    rate_limit_per_minute: int | None = None  # per company, in a sliding window, then 429
    rate_window_seconds: float = 60.0  # that window
    error_rate: float = 0.0  # share of API requests answered 503
    reset_rate: float = 0.0  # share of API requests whose connection is reset with no answer
    truncate_rate: float = 0.0  # share of API requests whose JSON body is cut in half
    slow_rate: float = 0.0  # share of API requests delayed by slow_seconds
    slow_seconds: float = 0.0
    token_error_rate: float = 0.0  # share of token requests answered 503
    token_latency: float = 0.0  # seconds added to every token request
    token_lose_next: int = 0  # the next N token requests are processed, then answered with a reset
    throttle_rate: float = 0.0  # share of API requests answered 429 (a storm beyond the rate limit)
    retry_after_seconds: int = 1  # Retry-After sent with throttle_rate's 429s
    html_responses: bool = False  # answer API requests with an HTML page, like a captive portal
    disabled_companies: list[str] = field(default_factory=list)
    fault_seed: int = 1
    # Keep each list page's encoded body and answer repeats from it: a benchmark warms the cache
    # once so that what it times is latency, not this server's own CPU. Mutations clear it.
    page_cache: bool = False
    # The API's unverified facts, one knob each (sandbox/variants.py); defaults follow the evidence.
    date_format: str = "date"  # date fields as `2025-03-07` (spec), or "datetime": `2025-03-07T00:00:00`
    problem_style: str = "aspnet"  # error bodies with `error.parameters[].errorMessage`, or "plain"
    revoked_status: int = 401  # a disabled or deleted connection's access token gets 401, or 403
    modified_filter: str = "honoured"  # modifiedAtOrAfter applied, "refused" (400) or "ignored"
    unknown_fields: bool = False  # unknown document fields, an unknown event type, extra company fields
    missing_types: list[str] = field(default_factory=list)  # `type` or `companyId:type` answering 404
    type_aliases: dict[str, str] = field(default_factory=dict)  # another path serving a type, e.g. qbooks/bills
    # Pages after the first N of a list answer 400 (an expired continuation token, say): a listing
    # broken part-way, which must mark nothing deleted. 0: off.
    break_listing_after: int = 0
    # `.../{type}/{requestId}` answers this status instead (0: off): a deletion check that cannot finish.
    single_document_status: int = 0
    # Request ids the lists leave out while `/{requestId}` still serves them (a list that hides, say,
    # archived documents: unverified): a sweep must not mark them deleted.
    hidden_from_lists: list[str] = field(default_factory=list)
    # Where `mutate` POSTs ApprovalMax-shaped webhooks for the documents it changed, added or
    # deleted ("": none). RequestType names follow `XeroBill`, the documented one.
    webhook_url: str = ""


@dataclass
class SandboxStats:
    requests: int = 0
    by_status: collections.Counter[int] = field(default_factory=collections.Counter)
    log: collections.deque[dict[str, Any]] = field(default_factory=lambda: collections.deque(maxlen=200_000))
    documents_served: int = 0
    started: float = field(default_factory=time.monotonic)  # log entries' "at" counts from here


class Sandbox:
    """A running sandbox: its URL, data, identity server, knobs and counters."""

    def __init__(self, dataset: Dataset, identity: Identity, knobs: SandboxKnobs) -> None:
        self.dataset = dataset
        self.identity = identity
        self.knobs = knobs
        self.page_cache: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[bytes, int]] = {}
        self.stats = SandboxStats()
        self.lock = threading.Lock()
        self._windows: dict[str, collections.deque[float]] = {}
        self._fault_rng = random.Random(knobs.fault_seed)
        self.replay: Replay | None = None  # serve a recording instead of the synthetic data
        self.monotonic = time.monotonic  # the rate limiter's clock: a test may move it instead of waiting
        self.server: SandboxHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else host
        return f"http://{name}:{port}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def configure(self, changes: dict[str, Any]) -> None:
        with self.lock:
            for key, value in changes.items():
                if key in IdentityKnobs.__dataclass_fields__:
                    setattr(self.identity.knobs, key, value)
                elif key in SandboxKnobs.__dataclass_fields__:
                    check_knob(key, value)
                    setattr(self.knobs, key, value)
                    self.page_cache.clear()
                    if key == "fault_seed":
                        self._fault_rng = random.Random(value)
                else:
                    raise KeyError(key)

    def roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self.lock:
            return self._fault_rng.random() < rate

    def take_token_loss(self) -> bool:
        with self.lock:
            if self.knobs.token_lose_next > 0:
                self.knobs.token_lose_next -= 1
                return True
            return False

    def admit(self, company_id: str) -> float | None:
        """None when the request may go ahead, else seconds until it may (rate limit)."""
        limit = self.knobs.rate_limit_per_minute
        if not limit:
            return None
        now = self.monotonic()
        with self.lock:
            window = self._windows.setdefault(company_id, collections.deque())
            span = self.knobs.rate_window_seconds
            while window and window[0] <= now - span:
                window.popleft()
            if len(window) >= limit:
                return window[0] + span - now
            window.append(now)
            return None

    def record(self, method: str, path: str, query: dict[str, str], status: int, documents: int = 0) -> None:
        with self.lock:
            self.stats.requests += 1
            self.stats.by_status[status] += 1
            self.stats.documents_served += documents
            self.stats.log.append(
                {
                    "method": method,
                    "path": path,
                    "query": query,
                    "status": status,
                    "documents": documents,
                    "at": round(time.monotonic() - self.stats.started, 4),
                }
            )

    def stats_json(self, with_log: bool) -> dict[str, Any]:
        with self.lock:
            data: dict[str, Any] = {
                "requests": self.stats.requests,
                "by_status": {str(k): v for k, v in self.stats.by_status.items()},
                "documents_served": self.stats.documents_served,
                "grants": dict(self.identity.grants),
            }
            if with_log:
                data["log"] = list(self.stats.log)
            return data

    def reset_stats(self) -> None:
        with self.lock:
            self.stats = SandboxStats()
            self.identity.grants.clear()


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        super().__init__(address, SandboxHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Injected resets make broken pipes on purpose; stay quiet about them."""


def _encode_token(offset: int, signature: str) -> str:
    return base64.urlsafe_b64encode(f"{offset}|{signature}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> tuple[int, str]:
    padded = token + "=" * (-len(token) % 4)
    offset, signature = base64.urlsafe_b64decode(padded.encode()).decode().split("|", 1)
    return int(offset), signature


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm the body waits for the client's
    # delayed ACK of the headers (up to 40 ms on Linux), which cost every request about 25 ms here.
    disable_nagle_algorithm = True
    server: SandboxHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""

    @property
    def sandbox(self) -> Sandbox:
        return self.server.sandbox

    # --- responses --------------------------------------------------------------------------

    def send_json(
        self,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json; charset=utf-8",
    ) -> None:
        self.send_payload(status, json.dumps(body, separators=(",", ":")).encode(), headers, content_type)

    def send_payload(
        self,
        status: int,
        payload: bytes,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json; charset=utf-8",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def send_problem(
        self,
        status: int,
        title: str,
        detail: str,
        headers: dict[str, str] | None = None,
        parameters: list[dict[str, Any]] | None = None,
    ) -> None:
        body = problem_body(
            self.sandbox.knobs.problem_style, status, title, detail, urlsplit(self.path).path, parameters=parameters
        )
        self.send_json(status, body, headers, content_type="application/problem+json; charset=utf-8")

    def reset_connection(self) -> None:
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def send_truncated(self, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        self.wfile.flush()
        self.reset_connection()

    # --- dispatch -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        path = parts.path.rstrip("/") or "/"
        if path.startswith("/_sandbox/"):
            return self.admin_get(path, query)
        if path == "/connect/authorize":
            status, headers, body = self.sandbox.identity.authorize(query)
            if status == 302:
                self.send_response(302)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_json(status, body)
            return None
        return self.api_get(path, query)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path.rstrip("/")
        if path == "/connect/token":
            if self.sandbox.knobs.token_latency:
                time.sleep(self.sandbox.knobs.token_latency)
            if self.sandbox.roll(self.sandbox.knobs.token_error_rate):
                self.send_json(503, {"error": "temporarily_unavailable"})
                return
            kind = self.headers.get("Content-Type", "")
            if "json" in kind:
                form = {k: str(v) for k, v in json.loads(raw or b"{}").items()}
            else:
                form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
            status, body = self.sandbox.identity.token(form)
            if self.sandbox.take_token_loss():
                self.reset_connection()  # rotated on the server, but the answer never arrives
                return
            self.send_json(status, body, {"Cache-Control": "no-store"})
            return
        if path.startswith("/_sandbox/"):
            self.admin_post(path, json.loads(raw or b"{}"))
            return
        self.send_problem(404, "Not Found", f"no POST endpoint {path}")

    # --- the API ---------------------------------------------------------------------------------

    def api_get(self, path: str, query: dict[str, str]) -> None:
        sandbox = self.sandbox
        problem = sandbox.identity.check_access_token(self.headers.get("Authorization"))
        if problem is not None:
            status = sandbox.knobs.revoked_status if problem == "connection disabled or deleted" else 401
            sandbox.record("GET", path, query, status)
            self.send_json(
                status,
                {"error": problem},
                {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{problem}"'},
            )
            return
        match = _COMPANY_ROUTE.match(path)
        company = match.group("company") if match else ""
        if match:
            wait = sandbox.admit(company)
            if wait is not None:
                sandbox.record("GET", path, query, 429)
                self.send_problem(
                    429, "Too Many Requests", "rate limit exceeded", {"Retry-After": str(max(1, int(wait + 0.999)))}
                )
                return
        knobs = sandbox.knobs
        if sandbox.replay is not None:
            return self.replay_get(path, query)
        if sandbox.roll(knobs.throttle_rate):
            sandbox.record("GET", path, query, 429)
            self.send_problem(
                429, "Too Many Requests", "injected throttling", {"Retry-After": str(knobs.retry_after_seconds)}
            )
            return
        if sandbox.roll(knobs.reset_rate):
            sandbox.record("GET", path, query, 0)
            self.reset_connection()
            return
        if sandbox.roll(knobs.error_rate):
            sandbox.record("GET", path, query, 503)
            self.send_problem(503, "Service Unavailable", "injected failure")
            return
        if knobs.latency:
            time.sleep(knobs.latency)
        if sandbox.roll(knobs.slow_rate):
            time.sleep(knobs.slow_seconds)
        if knobs.html_responses:
            sandbox.record("GET", path, query, 200)
            payload = b"<html><body>Please sign in to the network</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if path == "/ping":
            sandbox.record("GET", path, query, 200)
            self.send_json(200, "pong")
            return
        if path == "/api/v1/companies":
            body = [
                shape_company({"companyId": c.company_id, "name": c.name}, knobs.unknown_fields)
                for c in sandbox.dataset.companies
            ]
            sandbox.record("GET", path, query, 200)
            self.send_json(200, body)
            return
        if not match or company not in sandbox.dataset.company_ids():
            sandbox.record("GET", path, query, 404)
            self.send_problem(404, "Not Found", f"no resource at {path}")
            return
        if company in knobs.disabled_companies:
            sandbox.record("GET", path, query, 400)
            self.send_problem(400, "Bad Request", f"The {company} is disabled.")
            return
        rest = match.group("rest")
        for alias, served in knobs.type_aliases.items():
            if rest == alias or rest.startswith(alias + "/"):
                rest = served + rest[len(alias) :]
        if rest == "userProfiles":
            body = sandbox.dataset.users[company]
            sandbox.record("GET", path, query, 200)
            self.send_json(200, body)
            return
        for known in TYPE_WEIGHTS:
            if rest == known or rest.startswith(known + "/"):
                doc_type, request_id = known, rest[len(known) + 1 :]
                break
        else:
            sandbox.record("GET", path, query, 404)
            self.send_problem(404, "Not Found", f"no resource at {path}")
            return
        if is_missing(company, doc_type, knobs.missing_types):
            sandbox.record("GET", path, query, 404)
            self.send_problem(404, "Not Found", f"no resource at {path}")
            return
        if request_id:
            self.one_document(path, query, company, doc_type, request_id)
        else:
            self.list_documents(path, query, company, doc_type)

    def replay_get(self, path: str, query: dict[str, str]) -> None:
        recorded = self.sandbox.replay.answer(path, query) if self.sandbox.replay is not None else None
        if recorded is None:
            self.sandbox.record("GET", path, query, 404)
            self.send_problem(404, "Not Found", f"{path} with this query is not in the recording")
            return
        self.sandbox.record("GET", path, query, recorded.status)
        self.send_payload(recorded.status, recorded.payload, content_type=recorded.content_type)

    def one_document(self, path: str, query: dict[str, str], company: str, doc_type: str, request_id: str) -> None:
        dataset = self.sandbox.dataset
        refused = self.sandbox.knobs.single_document_status
        if refused:
            self.sandbox.record("GET", path, query, refused)
            self.send_problem(refused, "Bad Request", "this document cannot be read now")
            return
        with dataset.lock:
            header = dataset.collections[(company, doc_type)].by_id.get(request_id)
            doc = dataset.document(company, doc_type, header) if header else None
        status = 200 if doc else 404
        self.sandbox.record("GET", path, query, status, 1 if doc else 0)
        if doc is None:
            self.send_problem(404, "Not Found", f"no document {request_id}")
        else:
            knobs = self.sandbox.knobs
            self.send_json(200, shape_document(doc, knobs.date_format, knobs.unknown_fields))

    def list_documents(self, path: str, query: dict[str, str], company: str, doc_type: str) -> None:
        sandbox = self.sandbox
        knobs = sandbox.knobs
        allowed = LIST_PARAMS - {"modifiedAtOrAfter"} if knobs.modified_filter == "refused" else LIST_PARAMS
        unknown = sorted(set(query) - allowed)
        if unknown:
            sandbox.record("GET", path, query, 400)
            self.send_invalid(
                f"Unknown query parameter(s): {', '.join(unknown)}",
                [invalid_parameter(name, query[name], f"The parameter '{name}' is not supported.") for name in unknown],
            )
            return
        try:
            limit = min(PAGE_CAP, int(query.get("limit", PAGE_CAP)))
            if limit < 1:
                raise ValueError
        except ValueError:
            sandbox.record("GET", path, query, 400)
            message = "limit must be a positive integer"
            self.send_invalid(message, [invalid_parameter("limit", query.get("limit", ""), message)])
            return
        try:
            modified_from = parse_filter_time(query["modifiedAtOrAfter"]) if "modifiedAtOrAfter" in query else None
            created_from = parse_filter_time(query["createdAtOrAfter"]) if "createdAtOrAfter" in query else None
        except ValueError:
            sandbox.record("GET", path, query, 400)
            self.send_invalid("a date filter is not ISO 8601", [])
            return
        if knobs.modified_filter == "ignored":
            modified_from = None
        status = query.get("requestStatus")
        if status is not None and status not in STATUSES:
            sandbox.record("GET", path, query, 400)
            message = f"requestStatus {status!r} is invalid"
            self.send_invalid(message, [invalid_parameter("requestStatus", status, message)])
            return
        signature = hashlib.sha1(repr((path, modified_from, created_from, status)).encode()).hexdigest()[:12]
        offset = 0
        if query.get("continuationToken"):
            try:
                offset, token_signature = _decode_token(query["continuationToken"])
                if token_signature != signature or offset < 0:
                    raise ValueError
            except ValueError:
                sandbox.record("GET", path, query, 400)
                self.send_problem(400, "Bad Request", "continuationToken is invalid for this query")
                return
        if knobs.break_listing_after and offset >= knobs.break_listing_after * limit:
            sandbox.record("GET", path, query, 400)
            self.send_problem(400, "Bad Request", "continuationToken has expired")
            return
        cache_key = (path, tuple(sorted(query.items())))
        cached = sandbox.page_cache.get(cache_key) if sandbox.knobs.page_cache else None
        if cached is not None:
            sandbox.record("GET", path, query, 200, cached[1])
            self.send_payload(200, cached[0])
            return
        dataset = sandbox.dataset
        with dataset.lock:
            headers = dataset.list_documents(company, doc_type, modified_from, created_from, status)
            if knobs.hidden_from_lists:
                hidden = set(knobs.hidden_from_lists)
                headers = [h for h in headers if h.request_id not in hidden]
            page = [
                shape_document(dataset.document(company, doc_type, h), knobs.date_format, knobs.unknown_fields)
                for h in headers[offset : offset + limit]
            ]
        more = offset + limit < len(headers)
        body = {"payload": page, "continuationToken": _encode_token(offset + limit, signature) if more else None}
        sandbox.record("GET", path, query, 200, len(page))
        if sandbox.roll(sandbox.knobs.truncate_rate):
            self.send_truncated(body)
            return
        payload = json.dumps(body, separators=(",", ":")).encode()
        if sandbox.knobs.page_cache:
            sandbox.page_cache[cache_key] = (payload, len(page))
        self.send_payload(200, payload)

    def send_invalid(self, detail: str, parameters: list[dict[str, Any]]) -> None:
        """400 invalidInput: ASP.NET's validation answer."""
        self.send_problem(400, "One or more validation errors occurred.", detail, parameters=parameters)

    # --- admin ------------------------------------------------------------------------------------

    def admin_get(self, path: str, query: dict[str, str]) -> None:
        sandbox = self.sandbox
        if path == "/_sandbox/stats":
            self.send_json(200, sandbox.stats_json(with_log=query.get("log") == "1"))
        elif path == "/_sandbox/config":
            self.send_json(200, {**asdict(sandbox.knobs), **asdict(sandbox.identity.knobs)})
        elif path == "/_sandbox/planted":
            self.send_json(200, sandbox.dataset.planted())
        elif path == "/_sandbox/export":
            dataset = sandbox.dataset
            companies = [query["company"]] if "company" in query else dataset.company_ids()
            types = [query["type"]] if "type" in query else list(TYPE_WEIGHTS)
            knobs = sandbox.knobs
            body = {
                c: {
                    t: [shape_document(d, knobs.date_format, knobs.unknown_fields) for d in dataset.all_documents(c, t)]
                    for t in types
                    if not is_missing(c, t, knobs.missing_types)
                }
                for c in companies
            }
            self.send_json(200, body)
        else:
            self.send_problem(404, "Not Found", f"no admin endpoint {path}")

    def admin_post(self, path: str, body: dict[str, Any]) -> None:
        sandbox = self.sandbox
        if path == "/_sandbox/config":
            try:
                sandbox.configure(body)
            except KeyError as exc:
                self.send_problem(400, "Bad Request", f"unknown knob {exc}")
                return
            except ValueError as exc:
                self.send_problem(400, "Bad Request", str(exc))
                return
            self.send_json(200, {**asdict(sandbox.knobs), **asdict(sandbox.identity.knobs)})
        elif path == "/_sandbox/mutate":
            # `ago_seconds` stamps the changes in the past: a late write, visible after its time.
            stamp = datetime.now(UTC) - timedelta(seconds=float(body.get("ago_seconds", 0)))
            counts = {name: int(body.get(name, 0)) for name in ("modify", "add", "delete", "silent", "users")}
            result = sandbox.dataset.mutate(
                counts["modify"],
                counts["add"],
                stamp,
                delete=counts["delete"],
                silent=counts["silent"],
                only=body.get("company"),  # one company's documents only
                users=counts["users"],
            )
            sandbox.page_cache.clear()
            if sandbox.knobs.webhook_url:
                send_webhooks(sandbox.knobs.webhook_url, list(sandbox.dataset.touched))
            self.send_json(200, result)
        elif path == "/_sandbox/refresh-token":
            self.send_json(200, {"refresh_token": sandbox.identity.issue_refresh_token()})
        elif path == "/_sandbox/revoke":
            sandbox.identity.revoke_all(delete=body.get("mode") == "delete")
            self.send_json(200, {"revoked": body.get("mode", "disable")})
        elif path == "/_sandbox/enable":
            sandbox.identity.enable_all()
            self.send_json(200, {"enabled": True})
        elif path == "/_sandbox/reset-stats":
            sandbox.reset_stats()
            self.send_json(200, {"reset": True})
        else:
            self.send_problem(404, "Not Found", f"no admin endpoint {path}")


WEBHOOK_TYPES = {
    "xero/bills": "XeroBill",
    "xero/purchase-orders": "XeroPurchaseOrder",
    "xero/credit-notes": "XeroCreditNote",
    "xero/sales-invoices": "XeroSalesInvoice",
    "xero/batch-payments": "XeroBatchPayment",
    "xero/quotes": "XeroQuote",
    "standalone/documents": "StandaloneRequest",
}


def webhook_payload(touched: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The documented shape: {"Events": [...], "Entropy": "..."}."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0+00:00"
    events = [
        {
            "EventType": "Approved",
            "EventSubType": "ApprovedByApprover",
            "RequestType": WEBHOOK_TYPES[doc_type],
            "RequestId": request_id,
            "CompanyId": company,
            "TimeStamp": stamp,
        }
        for company, doc_type, request_id in touched
    ]
    return {"Events": events, "Entropy": secrets.token_hex(16)}


def webhook_address(url: str, secret: str) -> str:
    """Where to POST a listener's webhooks: `url` as given when it has a path, else the listener's
    path with `secret` (what `approvalmax listen` serves)."""
    parts = httpx.URL(url)
    if parts.path not in ("", "/"):
        return url
    return f"{url.rstrip('/')}/webhooks/approvalmax/{secret}"


def send_webhooks(url: str, touched: list[tuple[str, str, str]]) -> None:
    """POST the events in the background, one call per 50, as a webhook sender would (no retries)."""

    def post() -> None:
        with httpx.Client(timeout=10) as client:
            for start in range(0, len(touched), 50):
                # a lost webhook is lost: the receiver's next sweep is the safety net
                with contextlib.suppress(httpx.HTTPError):
                    client.post(url, json=webhook_payload(touched[start : start + 50]))

    threading.Thread(target=post, name="sandbox-webhooks", daemon=True).start()


def start_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    seed: int = 7,
    companies: int = 4,
    documents_per_company: int = 200,
    knobs: SandboxKnobs | None = None,
    identity_knobs: IdentityKnobs | None = None,
    replay: Replay | None = None,
) -> Sandbox:
    """Start in a daemon thread and return at once; `port=0` picks a free port."""
    dataset = Dataset(seed=seed, companies=companies, documents_per_company=documents_per_company)
    identity = Identity(knobs=identity_knobs or IdentityKnobs())
    sandbox = Sandbox(dataset, identity, knobs or SandboxKnobs())
    sandbox.replay = replay
    server = SandboxHTTPServer((host, port), sandbox)
    sandbox.server = server
    # A short poll: stop() waits for it, and tests stop a sandbox each.
    serve = functools.partial(server.serve_forever, poll_interval=0.05)
    sandbox.thread = threading.Thread(target=serve, name="approvalmax-sandbox", daemon=True)
    sandbox.thread.start()
    return sandbox
