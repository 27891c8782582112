"""HTTP to the ApprovalMax API: JSON GETs with retries, continuation-token paging, request counts."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..http_retry import RETRYABLE_EXCEPTIONS, RetryPolicy, is_retryable_status, parse_retry_after
from .arrow_pages import ArrowPage, parse_page
from .errors import ApiError, ApiResponseError, ApiUnavailable
from .pacing import CompanyPacer
from .page_schema import PageSchema
from .problem import api_error, clean_text
from .settings import (
    COMPANIES_PATH,
    COMPANY_PATH,
    MODIFIED_FILTER,
    PAGE_LIMIT,
    PING_PATH,
    USER_PROFILES_PATH,
)

log = logging.getLogger(__name__)

USER_AGENT = "approvalmax-pipeline/0.1 (+dlt)"
# Filters a list can do without: refused once (400 naming it), they are left out for the rest
# of the run and the caller filters the whole lists itself (never observed in use, so unverified).
OPTIONAL_FILTERS = (MODIFIED_FILTER,)


@dataclass
class RequestStats:
    """Counts for the run summary and the benchmarks; updated from several threads."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, requests: int = 0, retries: int = 0, throttled: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries
            self.throttled += throttled


class ApprovalMaxClient:
    """One httpx client for the whole run, shared by every resource and thread."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        concurrency: int = 4,
        rate_limit_per_minute: int = 0,
        rate_limit_window_seconds: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        on_response: Callable[[httpx.Response], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.concurrency = max(1, concurrency)
        self.stats = RequestStats()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self.pacer = CompanyPacer(rate_limit_per_minute, rate_limit_window_seconds)
        self.refused_filters: set[str] = set()
        self._refused_lock = threading.Lock()
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=auth,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
            transport=transport,
            event_hooks={"response": [on_response]} if on_response is not None else None,
        )

    def __repr__(self) -> str:
        return f"ApprovalMaxClient({self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApprovalMaxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- endpoints -----------------------------------------------------------------------

    def ping(self) -> Any:
        return self.get_json(PING_PATH, expect_json=False)

    def companies(self) -> list[dict[str, Any]]:
        return self._list(self.get_json(COMPANIES_PATH), COMPANIES_PATH)

    def user_profiles(self, company_id: str) -> list[dict[str, Any]]:
        path = f"{COMPANY_PATH.format(company_id=company_id)}/{USER_PROFILES_PATH}"
        body = self.get_json(path, company=company_id)
        if isinstance(body, dict) and isinstance(body.get("payload"), list):
            return self._list(body["payload"], path)
        return self._list(body, path)

    def documents(
        self,
        company_id: str,
        type_path: str,
        params: Mapping[str, str] | None = None,
        page_schema: PageSchema | None = None,
    ) -> Iterator[list[dict[str, Any]] | ArrowPage]:
        """Pages of one company's documents of one type. With `page_schema`, pages Arrow can read
        come as ArrowPage (parsed in this thread, without the GIL); the others as lists of dicts."""
        path = f"{COMPANY_PATH.format(company_id=company_id)}/{type_path}"
        return self.pages(path, params or {}, company=company_id, page_schema=page_schema)

    def probe(self, path: str, params: Mapping[str, str] | None = None, company: str | None = None) -> httpx.Response:
        """One GET, answered as it is (no retry, no error mapping): for checking the API's shapes."""
        ticket = self.pacer.acquire(company) if company is not None else None
        try:
            with self._slots:
                self.stats.add(requests=1)
                return self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"GET {path} failed: {type(exc).__name__}: {clean_text(str(exc))}") from exc
        finally:
            if ticket is not None:
                self.pacer.done(ticket)

    # --- mechanics -----------------------------------------------------------------------

    def pages(
        self,
        path: str,
        params: Mapping[str, str],
        company: str | None = None,
        page_schema: PageSchema | None = None,
    ) -> Iterator[list[dict[str, Any]] | ArrowPage]:
        """Follow `continuationToken` until it is null or absent; each page is yielded as it comes."""
        token: str | None = None
        seen_tokens: set[str] = set()
        while True:
            query = {**params, "limit": str(PAGE_LIMIT)}
            if token:
                query["continuationToken"] = token
            try:
                body = self.get_json(path, query, company=company, page_schema=page_schema)
            except ApiError as exc:
                if token is None and self._refuses_filter(exc, query):
                    continue  # the first page again, without the filter
                raise
            if isinstance(body, ArrowPage):
                yield body
                next_token = body.continuation_token
            elif isinstance(body, list):  # an unpaged answer: the whole list at once
                yield self._list(body, path)
                return
            elif not isinstance(body, dict) or not isinstance(body.get("payload"), list):
                raise ApiResponseError(f"GET {path} answered JSON without a `payload` list")
            else:
                yield self._list(body["payload"], path)
                next_token = body.get("continuationToken")
            if not next_token:
                return
            if not isinstance(next_token, str) or next_token in seen_tokens:
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

    def get_json(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        expect_json: bool = True,
        company: str | None = None,
        page_schema: PageSchema | None = None,
    ) -> Any:
        """GET with bounded retries on 429, 5xx, timeouts, cut connections and truncated JSON;
        requests for one company are paced to its rate limit."""
        attempt = 0
        while True:
            attempt += 1
            ticket = self.pacer.acquire(company) if company is not None else None
            try:
                try:
                    with self._slots:
                        self.stats.add(requests=1)
                        if params and self.refused_filters:  # checked once a slot is ours: it may have changed
                            params = {k: v for k, v in params.items() if k not in self.refused_filters}
                        response = self._http.get(path, params=params)
                finally:  # the attempt is over: date it now, before any backoff
                    if ticket is not None:
                        self.pacer.done(ticket)
            except RETRYABLE_EXCEPTIONS as exc:
                self._pause_or_raise(attempt, path, type(exc).__name__, None)
                continue
            except httpx.HTTPError as exc:
                raise ApiUnavailable(f"GET {path} failed: {type(exc).__name__}: {clean_text(str(exc))}") from None
            if response.status_code == 429:
                self.stats.add(throttled=1)
            if is_retryable_status(response.status_code):
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                self._pause_or_raise(attempt, path, f"HTTP {response.status_code}", retry_after, response)
                continue
            if response.is_error:
                raise api_error(response)
            if not expect_json:
                return response.text
            body = self._json(response, path, attempt, page_schema)
            if body is _RETRY:
                continue
            return body

    def _json(self, response: httpx.Response, path: str, attempt: int, page_schema: PageSchema | None = None) -> Any:
        kind = response.headers.get("content-type", "")
        if "html" in kind or response.content[:64].lstrip()[:1] == b"<":
            raise ApiResponseError(
                f"GET {path} answered {kind or 'non-JSON'} instead of JSON: "
                f"is api_base_url ({self.base_url}) the ApprovalMax API?"
            )
        explicit = page_schema.explicit if page_schema is not None else None
        if explicit is not None:
            page = parse_page(response.content, explicit)
            if page is not None:
                return page
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            # A cut or garbled body: worth another try, like a dropped connection.
            self._pause_or_raise(attempt, path, "truncated or invalid JSON", None)
            return _RETRY

    def _pause_or_raise(
        self,
        attempt: int,
        path: str,
        reason: str,
        retry_after: float | None,
        response: httpx.Response | None = None,
    ) -> None:
        too_long = retry_after is not None and retry_after > self.retry.max_retry_after
        if attempt >= self.retry.max_attempts or too_long:
            if response is not None:
                raise api_error(response)
            raise ApiUnavailable(f"GET {path} failed {attempt} time(s), last with {reason}")
        delay = retry_after if retry_after is not None else self.retry.backoff(attempt, self._rng)
        log.info("GET %s: %s; retry %d in %.2f s", path, reason, attempt, delay)
        self.stats.add(retries=1)
        self._sleep(delay)

    @staticmethod
    def _list(body: Any, path: str) -> list[dict[str, Any]]:
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            raise ApiResponseError(f"GET {path} answered JSON that is not a list of objects")
        return body


_RETRY: Any = object()
