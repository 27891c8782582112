"""`approvalmax doctor`: check each guess about the API against the configured one, with a live token.

What is only observed or guessed about the API (docs/api-guesses.md) was never verified by us; the pipeline
is built to survive each guess being wrong, and this says which ones are. It makes a bounded
number of requests (`request_budget`), never prints a token or a document's contents (only
field names, counts and shapes), and changes nothing but the token store (one refresh).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from approvalmax_pipeline.sources.approvalmax.client import ApprovalMaxClient
from approvalmax_pipeline.sources.approvalmax.companies import companies_of
from approvalmax_pipeline.sources.approvalmax.config import ApprovalMaxSettings
from approvalmax_pipeline.sources.approvalmax.connector import Connector
from approvalmax_pipeline.sources.approvalmax.problem import api_error, invalid_parameters
from approvalmax_pipeline.sources.approvalmax.records import is_time_field
from approvalmax_pipeline.sources.approvalmax.settings import (
    COMPANIES_PATH,
    COMPANY_PATH,
    MODIFIED_FILTER,
    PAGE_LIMIT,
    PING_PATH,
    USER_PROFILES_PATH,
    DocumentType,
)
from approvalmax_pipeline.sources.approvalmax.timestamps import TIMESTAMP_PATTERN, format_timestamp, parse_timestamp
from approvalmax_pipeline.sources.clock import SYSTEM_CLOCK
from approvalmax_pipeline.sources.oauth_tokens import RotatingRefreshTokens

VERIFIED = "verified"
DIFFERS = "differs"
NOT_CHECKED = "not checked"

COMPANY_FIELDS = ("companyId", "name")
USER_FIELDS = ("userId", "firstName", "lastName", "email")
RATE_LIMIT_HEADER_PARTS = ("ratelimit", "rate-limit", "retry-after")
INVALID_STATUS = "doctorCheck"  # a requestStatus no API accepts, to see its error body


@dataclass(frozen=True)
class Check:
    assumption: str
    result: str
    detail: str
    fix: str = ""


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)
    requests: int = 0

    @property
    def differs(self) -> bool:
        return any(check.result == DIFFERS for check in self.checks)


def request_budget(sample: int, document_types: int) -> int:
    """The most API requests a doctor run makes (besides token refreshes)."""
    return 6 + sample * (1 + document_types)


def run_doctor(settings: ApprovalMaxSettings, sample: int = 2, record_to: Path | None = None) -> DoctorReport:
    report = DoctorReport()
    with Connector(settings, record_to) as connector:
        client, document_types = connector.client, connector.document_types
        report.checks.append(_check_token_rotation(connector.tokens, settings))
        probe = Prober(client)
        report.checks.append(_check_ping(probe))
        companies_check, companies = _check_companies(probe)
        report.checks.append(companies_check)
        sampled = [company.id for company in companies_of(companies[:sample])]
        report.checks.append(_check_user_profiles(probe, sampled))
        documents: dict[tuple[str, str], dict[str, Any]] = {}  # (company, path) -> the first page's body
        for document_type in document_types:
            report.checks.append(_check_document_path(probe, sampled, document_type, documents))
        report.checks.append(_check_paging(probe, documents))
        report.checks.append(_check_modified_filter(probe, documents))
        report.checks.append(_check_time_formats(documents))
        report.checks.append(_check_error_body(probe, documents, sampled, document_types))
        report.checks.append(_check_rate_limit_headers(probe, settings))
        report.requests = client.stats.requests
    return report


class Prober:
    """The client's probe, keeping every response's headers for the rate-limit check."""

    def __init__(self, client: ApprovalMaxClient) -> None:
        self.client = client
        self.headers: list[httpx.Headers] = []

    def get(self, path: str, params: Mapping[str, str] | None = None, company: str | None = None) -> httpx.Response:
        response = self.client.probe(path, params, company)
        self.headers.append(response.headers)
        return response


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _check_token_rotation(tokens: RotatingRefreshTokens, settings: ApprovalMaxSettings) -> Check:
    assumption = "identity host; refresh rotates the refresh token"
    with tokens.store.lock():
        stored = tokens.store.load()
    before = (stored.refresh_token if stored else None) or settings.credentials.refresh_token
    first = tokens.access_token()
    if tokens.refreshes == 0:  # the stored access token was still good: refresh once to see it rotate
        tokens.access_token(rejected=first)
    with tokens.store.lock():
        after = tokens.store.load()
    expires = after.access_token_expires_at if after else None
    lifetime = f"; access token valid {(expires - SYSTEM_CLOCK.now()).total_seconds() / 60:.0f} min" if expires else ""
    if after is None or not after.refresh_token:
        return Check(assumption, DIFFERS, "a refresh gave no new access token", "run `approvalmax auth login`")
    if after.refresh_token == before:
        return Check(
            assumption,
            DIFFERS,
            f"{settings.identity_base_url} refreshed, but the refresh token did not rotate{lifetime}",
            "nothing to set: the store keeps whichever token is newest",
        )
    return Check(assumption, VERIFIED, f"{settings.identity_base_url} refreshed and rotated the token{lifetime}")


def _check_ping(probe: Prober) -> Check:
    response = probe.get(PING_PATH)
    if response.is_success:
        return Check(
            "API host answers /ping", VERIFIED, f"{probe.client.base_url}{PING_PATH} answered {response.status_code}"
        )
    return Check(
        "API host answers /ping",
        DIFFERS,
        str(api_error(response)),
        "check api_base_url (SOURCES__APPROVALMAX__API_BASE_URL)",
    )


def _objects(body: Any) -> list[dict[str, Any]] | None:
    """A plain array of objects, or a `payload` array of objects; None otherwise."""
    if isinstance(body, dict) and isinstance(body.get("payload"), list):
        body = body["payload"]
    if isinstance(body, list) and all(isinstance(item, dict) for item in body):
        return body
    return None


def _shape_check(assumption: str, items: list[dict[str, Any]], expected: Sequence[str], wrapped: bool) -> Check:
    keys = Counter(key for item in items for key in item)
    missing = [name for name in expected if items and keys[name] == 0]
    extra = sorted(set(keys) - set(expected))
    extra_text = f"; extra fields passed through: {', '.join(extra)}" if extra else ""
    if missing:
        return Check(
            assumption,
            DIFFERS,
            f"{len(items)} item(s) without {', '.join(missing)}{extra_text}",
            "file an issue with a recording (`doctor --record DIR`)",
        )
    if wrapped:
        return Check(assumption, DIFFERS, f"{len(items)} item(s) inside a `payload` object{extra_text}", "")
    return Check(assumption, VERIFIED, f"a plain array of {len(items)} item(s) with {', '.join(expected)}{extra_text}")


def _check_companies(probe: Prober) -> tuple[Check, list[dict[str, Any]]]:
    assumption = "/companies: a plain array of {companyId, name}"
    response = probe.get(COMPANIES_PATH)
    if not response.is_success:
        return Check(assumption, DIFFERS, str(api_error(response)), ""), []
    body = _json(response)
    items = _objects(body)
    if items is None:
        return Check(assumption, DIFFERS, "not an array of objects", "file an issue with a recording"), []
    return _shape_check(assumption, items, COMPANY_FIELDS, isinstance(body, dict)), items


def _check_user_profiles(probe: Prober, companies: Sequence[str]) -> Check:
    assumption = "userProfiles: a plain array of {userId, firstName, lastName, email}"
    if not companies:
        return Check(assumption, NOT_CHECKED, "no organisation to ask")
    items: list[dict[str, Any]] = []
    wrapped = False
    for company in companies:
        response = probe.get(f"{COMPANY_PATH.format(company_id=company)}/{USER_PROFILES_PATH}", company=company)
        if not response.is_success:
            return Check(assumption, DIFFERS, str(api_error(response)), "")
        body = _json(response)
        found = _objects(body)
        if found is None:
            return Check(assumption, DIFFERS, "not an array of objects", "file an issue with a recording")
        wrapped = wrapped or isinstance(body, dict)
        items.extend(found)
    return _shape_check(assumption, items, USER_FIELDS, wrapped)


def _check_document_path(
    probe: Prober,
    companies: Sequence[str],
    document_type: DocumentType,
    documents: dict[tuple[str, str], dict[str, Any]],
) -> Check:
    assumption = f"path {document_type.path} ({document_type.resource})"
    if not companies:
        return Check(assumption, NOT_CHECKED, "no organisation to ask")
    answered, absent, errors = 0, 0, []
    for company in companies:
        path = f"{COMPANY_PATH.format(company_id=company)}/{document_type.path}"
        response = probe.get(path, {"limit": "1"}, company=company)
        body = _json(response)
        if response.status_code == 404:
            absent += 1
        elif not response.is_success:
            errors.append(str(api_error(response)))
        elif not isinstance(body, dict) or _objects(body) is None:
            errors.append("answered JSON without a `payload` array")
        else:
            answered += 1
            documents[(company, path)] = body
    if errors:
        return Check(
            assumption, DIFFERS, errors[0], "see the message; a plan without the API answers `... is disabled.`"
        )
    if not answered:
        return Check(
            assumption,
            NOT_CHECKED,
            f"404 for the {absent} organisation(s) asked: not applicable to them (runs report it once)",
            "if they do have these documents, the path differs: configure it in `document_types`",
        )
    note = f"; 404 (not applicable) for {absent}" if absent else ""
    return Check(assumption, VERIFIED, f"a `payload` page for {answered} organisation(s){note}")


def _with_documents(documents: Mapping[tuple[str, str], dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(company, path, body) for (company, path), body in documents.items() if body.get("payload")]


def _check_paging(probe: Prober, documents: Mapping[tuple[str, str], dict[str, Any]]) -> Check:
    assumption = f"paging: `continuationToken`, `limit` up to {PAGE_LIMIT}"
    paged = [(c, p, b) for c, p, b in _with_documents(documents) if b.get("continuationToken")]
    if not paged:
        return Check(assumption, NOT_CHECKED, "no list with two documents or more was found in the sample")
    company, path, body = paged[0]
    second = probe.get(path, {"limit": "1", "continuationToken": str(body["continuationToken"])}, company=company)
    page = _objects(_json(second)) if second.is_success else None
    first_id = body["payload"][0].get("requestId")
    if page is None or not page or page[0].get("requestId") == first_id:
        detail = str(api_error(second)) if not second.is_success else "the next page did not move on"
        return Check(assumption, DIFFERS, detail, "file an issue with a recording")
    full = probe.get(path, {"limit": str(PAGE_LIMIT)}, company=company)
    full_page = _objects(_json(full)) if full.is_success else None
    if full_page is None or len(full_page) > PAGE_LIMIT:
        detail = str(api_error(full)) if not full.is_success else f"limit={PAGE_LIMIT} gave {len(full_page or [])}"
        return Check(assumption, DIFFERS, detail, "file an issue: the page size is a constant (PAGE_LIMIT)")
    return Check(assumption, VERIFIED, f"a token led to the next page; limit={PAGE_LIMIT} accepted ({len(full_page)})")


def _check_modified_filter(probe: Prober, documents: Mapping[tuple[str, str], dict[str, Any]]) -> Check:
    assumption = f"`{MODIFIED_FILTER}` accepted and applied"
    candidates = _with_documents(documents)
    if not candidates:
        return Check(assumption, NOT_CHECKED, "no document in the sample to filter out")
    company, path, _body = candidates[0]
    future = format_timestamp(SYSTEM_CLOCK.now() + timedelta(days=1))
    response = probe.get(path, {"limit": "1", MODIFIED_FILTER: future}, company=company)
    fallback = "nothing to set: runs then read whole lists and skip what is loaded (exact, slower)"
    if response.status_code == 400:
        return Check(assumption, DIFFERS, f"refused: {api_error(response)}", fallback)
    page = _objects(_json(response)) if response.is_success else None
    if page is None:
        return Check(assumption, DIFFERS, str(api_error(response)), fallback)
    if page:
        return Check(assumption, DIFFERS, "accepted but ignored: a future date still returned documents", fallback)
    return Check(assumption, VERIFIED, "a date in the future returned no document")


def _time_values(value: Any, key: str = "") -> list[tuple[str, str]]:
    """(field, text) of every time field in a document, nested ones included."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for name, item in value.items():
            if isinstance(item, str) and is_time_field(name):
                found.append((name, item))
            else:
                found.extend(_time_values(item, name))
    elif isinstance(value, list):
        for item in value:
            found.extend(_time_values(item, key))
    return found


def _form(text: str) -> str:
    """How a readable time value is written, in the parts of timestamps.TIMESTAMP_PATTERN."""
    match = re.match(TIMESTAMP_PATTERN, text)
    if match is None:
        return "unreadable"
    _day, clock, fraction, zone = match.groups()
    if clock is None:
        return "date (YYYY-MM-DD)"
    zone_text = "no zone" if zone is None else ("Z" if zone == "Z" else "offset")
    return f"date-time, {len(fraction or '')} fractional digits, {zone_text}"


def _check_time_formats(documents: Mapping[tuple[str, str], dict[str, Any]]) -> Check:
    assumption = "timestamps ISO 8601 (up to 7 digits, Z or offset); dates YYYY-MM-DD or midnight"
    values = [v for _c, _p, body in _with_documents(documents) for doc in body["payload"] for v in _time_values(doc)]
    if not values:
        return Check(assumption, NOT_CHECKED, "no document in the sample")
    unreadable = sorted({name for name, text in values if parse_timestamp(text) is None})
    forms = Counter(_form(text) for _name, text in values if parse_timestamp(text) is not None)
    seen = "; ".join(f"{form}: {count}" for form, count in forms.most_common())
    if unreadable:
        return Check(
            assumption,
            DIFFERS,
            f"unreadable in {', '.join(unreadable)} (they load as text); seen: {seen}",
            "file an issue with a recording (`doctor --record DIR`)",
        )
    return Check(assumption, VERIFIED, f"{len(values)} values all read: {seen}")


def _check_error_body(
    probe: Prober,
    documents: Mapping[tuple[str, str], dict[str, Any]],
    companies: Sequence[str],
    document_types: Sequence[DocumentType],
) -> Check:
    assumption = "errors: Problem Details with `error.parameters[].errorMessage`"
    paths = list(documents) or [
        (c, f"{COMPANY_PATH.format(company_id=c)}/{d.path}") for c in companies[:1] for d in document_types[:1]
    ]
    if not paths:
        return Check(assumption, NOT_CHECKED, "no document list to ask")
    company, path = paths[0]
    response = probe.get(path, {"limit": "1", "requestStatus": INVALID_STATUS}, company=company)
    if response.status_code != 400:
        return Check(assumption, NOT_CHECKED, f"an invalid requestStatus answered {response.status_code}, not 400")
    body = _json(response)
    if not isinstance(body, dict):
        return Check(
            assumption, DIFFERS, "a 400 without a JSON body", "nothing to set: the status and reason are shown"
        )
    if invalid_parameters(body):
        return Check(assumption, VERIFIED, "400 invalidInput with errorMessage (shown in error lines)")
    shape = ", ".join(sorted(body)) or "empty"
    return Check(
        assumption, DIFFERS, f"a 400 with {shape}", "nothing to set: error lines show `title` and `detail` instead"
    )


def _check_rate_limit_headers(probe: Prober, settings: ApprovalMaxSettings) -> Check:
    assumption = f"rate limit {settings.rate_limit_per_minute} per company per window (no headers documented)"
    seen: dict[str, str] = {}
    for headers in probe.headers:
        for name, value in headers.items():
            if any(part in name.lower() for part in RATE_LIMIT_HEADER_PARTS):
                seen[name.lower()] = value
    if not seen:
        return Check(assumption, NOT_CHECKED, f"no rate-limit header in {len(probe.headers)} responses")
    shown = ", ".join(f"{name}: {value}" for name, value in sorted(seen.items()))
    limits = [int(v) for n, v in seen.items() if n.endswith("limit") and v.strip().isdigit()]
    if limits and limits[0] != settings.rate_limit_per_minute:
        return Check(assumption, DIFFERS, shown, f"set rate_limit_per_minute (and its window) to what {shown} says")
    return Check(assumption, VERIFIED, shown)
