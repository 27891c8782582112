"""HTTP to the ApprovalMax API: GETs with retries, continuation-token paging, request counts.

Pages come back raw (`pages.Page`): what their documents become is the source's business.
This module and everything it imports load without dlt.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import httpx

from ..clock import SYSTEM_CLOCK, Clock
from ..http_retry import RETRYABLE_EXCEPTIONS, Retry, RetryPolicy, is_retryable_status, parse_retry_after, with_retries
from .connections import Connections
from .errors import ApiError, ApiResponseError, ApiUnavailable
from .pacing import CompanyPacer
from .pages import NotAnEnvelope, Page, objects, read_envelope
from .problem import api_error, clean_text
from .rate_budget import RateBudget
from .settings import (
    COMPANIES_PATH,
    COMPANY_PATH,
    MODIFIED_FILTER,
    PAGE_LIMIT,
    PING_PATH,
    USER_PROFILES_PATH,
    DocumentType,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
USER_AGENT = "approvalmax-pipeline/0.1 (+dlt)"
# Filters a list can do without: refused once (400 naming it), they are left out for the rest
# of the run and the caller filters the whole lists itself (never observed in use, so unverified).
OPTIONAL_FILTERS = (MODIFIED_FILTER,)


@dataclass
class RequestStats:
    """Counts for the run summary, the run history and the benchmarks; updated from several threads.
    `by_path` counts per (company, path under the company) — "" and the path for the rest."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    by_path: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # -> [requests, retries]
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(
        self, *, requests: int = 0, retries: int = 0, throttled: int = 0, key: tuple[str, str] | None = None
    ) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries
            self.throttled += throttled
            if key is not None:
                counts = self.by_path.setdefault(key, [0, 0])
                counts[0] += requests
                counts[1] += retries

    def for_path(self, company: str, path: str) -> tuple[int, int]:
        """(requests, retries) of one company's path, e.g. `xero/bills` or `userProfiles`."""
        with self._lock:
            requests, retries = self.by_path.get((company, path), (0, 0))
            return requests, retries


def stats_key(path: str, company: str | None) -> tuple[str, str]:
    """(company, the path under it) for a company's request, else ("", path)."""
    prefix = COMPANY_PATH.format(company_id=company) + "/" if company else ""
    if prefix and path.startswith(prefix):
        return company or "", path[len(prefix) :]
    return "", path


class ApprovalMaxClient:
    """The run's HTTP to the API, shared by every resource and thread: `max_concurrency`
    connections in all (connections.py), `concurrency` of them at once per company."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        concurrency: int = 4,
        max_concurrency: int | None = None,
        rate_limit_per_minute: int = 0,
        rate_limit_window_seconds: float = 60.0,
        rate_budget: RateBudget | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        on_response: Callable[[httpx.Response], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.concurrency = max(1, concurrency)  # per company
        self.max_concurrency = max(1, max_concurrency if max_concurrency is not None else self.concurrency)
        self.stats = RequestStats()
        self._clock = clock
        self._rng = rng or random.Random()
        self._company_slots: dict[str, threading.BoundedSemaphore] = {}
        self._company_slots_lock = threading.Lock()
        self.pacer = CompanyPacer(rate_limit_per_minute, rate_limit_window_seconds, clock=clock, shared=rate_budget)
        self.refused_filters: set[str] = set()
        self._refused_lock = threading.Lock()
        # one TLS context for every connection: making one reads the CA bundle (about 25 ms)
        verify = httpx.create_ssl_context() if transport is None else True
        self._connections = Connections(
            self.max_concurrency,
            lambda: httpx.Client(
                base_url=self.base_url,
                auth=auth,
                timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
                headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                verify=verify,
                transport=transport,
                event_hooks={"response": [on_response]} if on_response is not None else None,
            ),
        )

    def __repr__(self) -> str:
        return f"ApprovalMaxClient({self.base_url!r})"

    def close(self) -> None:
        self._connections.close()
        self.pacer.close()

    def in_flight(self, companies: int) -> int:
        """Requests at once for a run over `companies`: `concurrency` each, `max_concurrency` in all."""
        return min(self.max_concurrency, self.concurrency * max(1, companies))

    def _company_slot(self, company: str) -> threading.BoundedSemaphore:
        with self._company_slots_lock:
            slot = self._company_slots.get(company)
            if slot is None:
                slot = self._company_slots[company] = threading.BoundedSemaphore(self.concurrency)
            return slot

    def __enter__(self) -> ApprovalMaxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- endpoints -----------------------------------------------------------------------

    def ping(self) -> str:
        return self.get(PING_PATH, read=lambda response: response.text)

    def companies(self) -> list[dict[str, Any]]:
        return objects(self.get_json(COMPANIES_PATH), COMPANIES_PATH)

    def user_profiles(self, company_id: str) -> list[dict[str, Any]]:
        path = f"{COMPANY_PATH.format(company_id=company_id)}/{USER_PROFILES_PATH}"
        body = self.get_json(path, company=company_id)
        if isinstance(body, dict) and isinstance(body.get("payload"), list):
            return objects(body["payload"], path)
        return objects(body, path)

    def documents(self, company_id: str, type_path: str, params: Mapping[str, str] | None = None) -> Iterator[Page]:
        """Pages of one company's documents of one type, each as soon as it arrives."""
        path = f"{COMPANY_PATH.format(company_id=company_id)}/{type_path}"
        return self.pages(path, params or {}, company=company_id)

    def document(self, company_id: str, document_type: DocumentType, request_id: str) -> dict[str, Any] | None:
        """One document by id; None when the API answers 404 (it is gone)."""
        path = f"{COMPANY_PATH.format(company_id=company_id)}/{document_type.document_path(request_id)}"
        try:
            body = self.get_json(path, company=company_id)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(body, dict):
            raise ApiResponseError(f"GET {path} answered {type(body).__name__}, not a JSON object")
        return body

    def probe(self, path: str, params: Mapping[str, str] | None = None, company: str | None = None) -> httpx.Response:
        """One GET, answered as it is (no retry, no error mapping): for checking the API's shapes."""
        ticket = self.pacer.acquire(company) if company is not None else None
        try:
            with self._slots_for(company) as http:
                self.stats.add(requests=1)
                return http.get(self._url(path, params))
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"GET {path} failed: {type(exc).__name__}: {clean_text(str(exc))}") from exc
        finally:
            if ticket is not None:
                self.pacer.done(ticket)

    # --- mechanics -----------------------------------------------------------------------

    def pages(self, path: str, params: Mapping[str, str], company: str | None = None) -> Iterator[Page]:
        """Follow `continuationToken` until it is null or absent."""
        token: str | None = None
        seen_tokens: set[str] = set()
        while True:
            query = {**params, "limit": str(PAGE_LIMIT)}
            if token:
                query["continuationToken"] = token
            read = functools.partial(self._page, path=path, requested_at=self._clock.now())
            try:
                page = self.get(path, query, company=company, read=read)
            except ApiError as exc:
                if token is None and self._refuses_filter(exc, query):
                    continue  # the first page again, without the filter
                raise
            yield page
            next_token = page.continuation_token
            if not next_token:
                return
            if next_token in seen_tokens:
                raise ApiResponseError(f"GET {path} repeated a continuation token; stopping to avoid a loop")
            seen_tokens.add(next_token)
            token = next_token

    def _refuses_filter(self, exc: ApiError, query: Mapping[str, str]) -> bool:
        """Whether `exc` refuses an optional filter of `query`; warns once per filter and run."""
        refused = next((name for name in OPTIONAL_FILTERS if name in query and exc.names_parameter(name)), None)
        # A request that left with the filter before the first refusal came back is refused too.
        if refused is None:
            return False
        with self._refused_lock:
            first = refused not in self.refused_filters
            self.refused_filters.add(refused)
        if first:
            log.warning(
                "the API refused the filter %s (%s); reading whole document lists instead and skipping what "
                "is already loaded: slower, still exact (`approvalmax doctor` checks the filter)",
                refused,
                exc,
            )
        return True

    def get_json(self, path: str, params: Mapping[str, str] | None = None, *, company: str | None = None) -> Any:
        """A GET whose answer is JSON (retried when it comes cut or garbled)."""
        return self.get(path, params, company=company, read=lambda response: self._json(response, path))

    def get(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        company: str | None = None,
        read: Callable[[httpx.Response], T],
    ) -> T:
        """GET with bounded retries on 429, 5xx, timeouts, cut connections and unreadable bodies
        (`read` raises Retry for those); requests for one company are paced to its rate limit."""

        key = stats_key(path, company)

        def attempt(_number: int) -> T:
            response = self._send(path, params, company, key)
            if response.status_code == 429:
                self.stats.add(throttled=1)
            if is_retryable_status(response.status_code):
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                raise Retry(f"HTTP {response.status_code}", retry_after=retry_after, response=response)
            if response.is_error:
                raise api_error(response)
            return read(response)

        def give_up(last: Retry, attempts: int) -> BaseException:
            if last.response is not None:
                return api_error(last.response)
            return ApiUnavailable(
                f"cannot reach the API at {self.base_url}: GET {path} failed {attempts} time(s), last with "
                f"{last.reason}; check api_base_url, the network and any proxy, then run again"
            )

        def on_retry(retry: Retry, number: int, delay: float) -> None:
            log.info("GET %s: %s; retry %d in %.2f s", path, retry.reason, number, delay)
            self.stats.add(retries=1, key=key)

        return with_retries(attempt, self.retry, give_up, clock=self._clock, rng=self._rng, on_retry=on_retry)

    def _send(
        self, path: str, params: Mapping[str, str] | None, company: str | None, key: tuple[str, str] | None = None
    ) -> httpx.Response:
        """One attempt: a pacing ticket, the company's slot and a run slot, dated by its end before any
        backoff. The rate wait comes first, so a company at its limit holds no slot another could use."""
        ticket = self.pacer.acquire(company) if company is not None else None
        try:
            with self._slots_for(company) as http:
                self.stats.add(requests=1, key=key)
                if params and self.refused_filters:  # checked once a slot is ours: it may have changed
                    params = {k: v for k, v in params.items() if k not in self.refused_filters}
                return http.get(self._url(path, params))
        except RETRYABLE_EXCEPTIONS as exc:
            raise Retry(type(exc).__name__) from exc
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"GET {path} failed: {type(exc).__name__}: {clean_text(str(exc))}") from exc
        finally:
            if ticket is not None:
                self.pacer.done(ticket)

    def _url(self, path: str, params: Mapping[str, str] | None) -> httpx.URL:
        """The whole URL, parsed once: httpx parses a relative path and its params three times over,
        character by character, which was a fifth of a quiet run's CPU."""
        return httpx.URL(f"{self.base_url}/{path.lstrip('/')}", params=dict(params) if params else None)

    @contextlib.contextmanager
    def _slots_for(self, company: str | None) -> Iterator[httpx.Client]:
        """The company's slot (when there is one), then a connection of the run's."""
        if company is None:
            with self._connections.borrow() as http:
                yield http
            return
        with self._company_slot(company), self._connections.borrow() as http:
            yield http

    def _checked_json_body(self, response: httpx.Response, path: str) -> None:
        kind = response.headers.get("content-type", "")
        if "html" in kind or response.content[:64].lstrip()[:1] == b"<":
            raise ApiResponseError(
                f"GET {path} answered {kind or 'non-JSON'} instead of JSON: "
                f"is api_base_url ({self.base_url}) the ApprovalMax API?"
            )

    def _json(self, response: httpx.Response, path: str) -> Any:
        self._checked_json_body(response, path)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            # A cut or garbled body: worth another try, like a dropped connection.
            raise Retry("truncated or invalid JSON") from exc

    def _page(self, response: httpx.Response, path: str, requested_at: datetime) -> Page:
        self._checked_json_body(response, path)
        try:
            return read_envelope(response.content, requested_at, path)
        except NotAnEnvelope as exc:
            raise Retry("truncated or invalid JSON") from exc
