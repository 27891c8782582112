"""The API's unverified facts, each as a knob with every plausible variant.

The sandbox shares the client's guesses, so it cannot prove one; what it can do is serve each
variant a guess could turn out to be, so the tests show the pipeline stays correct in all of
them. Defaults follow what is documented or observed about the API (docs/api-guesses.md).
"""

from __future__ import annotations

import hashlib
from typing import Any

from .data import DATE_FIELDS, SYSTEM_USER

DATE_FORMATS = ("date", "datetime")  # `2025-03-07` as the spec types it; `2025-03-07T00:00:00`
PROBLEM_STYLES = ("aspnet", "plain")  # Problem Details with `error.parameters[]`; title and detail only
REVOKED_STATUSES = (401, 403)  # what a disabled connection's access token gets
# How `modifiedAtOrAfter` behaves: applied; refused with 400 invalidInput naming it; accepted, not applied.
MODIFIED_FILTERS = ("honoured", "refused", "ignored")

# What `unknown_fields` adds: fields, an event type and company fields the client has never seen.
UNKNOWN_EVENT_TYPE = "emailToPartnerSent"
UNKNOWN_COMPANY_FIELDS = {"timeZone": "Pacific/Auckland", "integrationType": "Xero", "isReadOnly": False}


def check_knob(name: str, value: Any) -> None:
    """ValueError for a variant knob set to something that is not one of its variants."""
    allowed = {
        "date_format": DATE_FORMATS,
        "problem_style": PROBLEM_STYLES,
        "revoked_status": REVOKED_STATUSES,
        "modified_filter": MODIFIED_FILTERS,
    }.get(name)
    if allowed is not None and value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}")


def shape_document(doc: dict[str, Any], date_format: str, unknown_fields: bool) -> dict[str, Any]:
    """A document as the chosen variants serve it (the stored one is left as it is)."""
    if date_format == "date" and not unknown_fields:
        return doc
    shaped = dict(doc)
    if date_format == "datetime":
        for name in DATE_FIELDS:
            value = shaped.get(name)
            if isinstance(value, str) and len(value) == 10:
                shaped[name] = value + "T00:00:00"
    if unknown_fields:
        digest = hashlib.blake2b(str(doc.get("requestId")).encode(), digest_size=4).hexdigest()
        shaped["taxRateString"] = "15%"
        shaped["reference"] = f"REF-{digest}"
        shaped["deliveryAddress"] = {"addressLine1": f"{int(digest, 16) % 900 + 1} Queen Street", "city": "Wellington"}
        shaped["isNewFeatureFlag"] = True
        shaped["commentAttachments"] = []
        events = list(shaped.get("events") or [])
        if events:
            events.append(
                {
                    "eventType": UNKNOWN_EVENT_TYPE,
                    "eventDate": events[-1]["eventDate"],
                    "authorId": SYSTEM_USER,
                    "isSystem": True,
                    "comment": None,
                    "recipientEmail": f"accounts-{digest}@supplier.example.com",
                }
            )
            shaped["events"] = events
    return shaped


def shape_company(company: dict[str, Any], unknown_fields: bool) -> dict[str, Any]:
    return {**company, **UNKNOWN_COMPANY_FIELDS} if unknown_fields else company


def is_missing(company_id: str, doc_type: str, missing_types: list[str]) -> bool:
    """`missing_types` holds `type` (no company has it) or `companyId:type` (that one lacks it)."""
    return doc_type in missing_types or f"{company_id}:{doc_type}" in missing_types


def problem_body(
    style: str,
    status: int,
    title: str,
    detail: str,
    instance: str,
    *,
    code: str | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An error body. ASP.NET's (`aspnet`) keeps the specific reason in
    `error.parameters[].errorMessage` and a generic `detail`; `plain` has only title and detail."""
    trace = f"00-{hashlib.md5(instance.encode()).hexdigest()}-00"
    if style == "plain":
        reasons = [p["errorMessage"] for p in parameters or () if p.get("errorMessage")]
        return {
            "type": f"https://tools.ietf.org/html/rfc9110#section-15.5.{status - 399}",
            "title": title,
            "status": status,
            "detail": "; ".join(reasons) if reasons else detail,
            "instance": instance,
            "traceId": trace,
        }
    code = code or ("invalidInput" if status == 400 else _camel(title))
    return {
        "type": f"/api/errors/{code}",
        "title": title,
        "status": status,
        "detail": "One or more validation errors occurred." if parameters else detail,
        "instance": instance,
        "error": {"code": code, "title": title, "parameters": parameters or []},
        "traceId": trace,
    }


def _camel(title: str) -> str:
    """`Not Found` -> `notFound`, as ASP.NET's error codes are spelled."""
    joined = "".join(word.capitalize() for word in title.split())
    return joined[:1].lower() + joined[1:]


def invalid_parameter(name: str, value: str, message: str) -> dict[str, Any]:
    return {"path": name, "name": name, "value": value, "errorMessage": message}
