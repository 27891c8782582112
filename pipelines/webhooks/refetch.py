"""The documents queued events name, read at the API's pace: by list when that costs fewer calls.

A company's reads are limited (reportedly 100 calls a minute per client and company), and a burst
of approvals names many documents of one type at once. One list read with `modifiedAtOrAfter`
returns up to 100 documents a call, so a batch's events are coalesced per company and type and read
from the list when they name two documents or more; whatever the list does not return (deleted,
or dated before the list's start) is read by id, as is a lone document. The list starts
LIST_MARGIN before the oldest event, and paging stops once more pages would cost more than reading
the documents still missing by id, so a list read never costs more than twice the reads by id,
whether the API honours the filter, ignores it or refuses it. Which documents are loaded does not
depend on the choice: every named document is read as it is now, one way or the other.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from approvalmax_pipeline.sources.approvalmax.client import ApprovalMaxClient
from approvalmax_pipeline.sources.approvalmax.settings import MODIFIED_FILTER, DocumentType
from approvalmax_pipeline.sources.approvalmax.timestamps import format_timestamp
from approvalmax_pipeline.sources.errors import ConnectorError, first_line

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # company, resource, request id
# The list read starts this long before the oldest event of its group: room for the difference
# between the event's time and the document's modifiedDate (and between clocks).
LIST_MARGIN = timedelta(minutes=1)
LIST_FROM = 2  # documents of one company and type in a batch from which a list read is tried


@dataclass
class Refetched:
    """What one batch read: the documents (None: the API answered 404), the keys that failed, and
    the calls it took."""

    documents: dict[Key, dict[str, Any] | None] = field(default_factory=dict)
    failed: dict[Key, str] = field(default_factory=dict)
    list_pages: int = 0
    by_id: int = 0
    calls: Counter[str] = field(default_factory=Counter)  # by company


def refetch(client: ApprovalMaxClient, types: Mapping[str, DocumentType], wanted: Mapping[Key, datetime]) -> Refetched:
    """Read every key of `wanted` (each with the time of its oldest event) as it is now."""
    result = Refetched()
    groups: dict[tuple[str, str], dict[str, datetime]] = {}
    for (company, resource, request_id), since in wanted.items():
        groups.setdefault((company, resource), {})[request_id] = since
    workers = max(1, client.in_flight(len({company for company, _r in groups})))

    def from_list(group: tuple[str, str]) -> tuple[tuple[str, str], dict[str, dict[str, Any]], int]:
        company, resource = group
        ids = groups[group]
        if len(ids) < LIST_FROM or MODIFIED_FILTER in client.refused_filters:
            return group, {}, 0
        try:
            found, pages = _list_read(client, company, types[resource], ids)
        except ConnectorError as exc:  # a list that fails (404: none for this type here) costs no document
            log.info("webhook %s %s: list read failed (%s); reading by id", company, resource, first_line(exc))
            return group, {}, 1
        return group, found, pages

    missing: list[Key] = []
    with ThreadPoolExecutor(max_workers=min(workers, len(groups)) or 1) as pool:
        for (company, resource), found, pages in pool.map(from_list, list(groups)):
            result.list_pages += pages
            result.calls[company] += pages
            for request_id in groups[company, resource]:
                key = (company, resource, request_id)
                if request_id in found:
                    result.documents[key] = found[request_id]
                else:
                    missing.append(key)

    def by_id(key: Key) -> tuple[Key, dict[str, Any] | None, str | None]:
        company, resource, request_id = key
        try:
            return key, client.document(company, types[resource], request_id), None
        except ConnectorError as exc:
            return key, None, first_line(exc)

    if missing:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(missing)))) as pool:
            for key, document, error in pool.map(by_id, missing):
                result.by_id += 1
                result.calls[key[0]] += 1
                if error is None:
                    result.documents[key] = document
                else:
                    log.warning("webhook %s %s %s: not fetched (%s); retried next batch", *key, error)
                    result.failed[key] = error
    return result


def _list_read(
    client: ApprovalMaxClient, company: str, document_type: DocumentType, ids: Mapping[str, datetime]
) -> tuple[dict[str, dict[str, Any]], int]:
    """The documents of `ids` a list since their oldest event returns, and the pages it took."""
    since = min(ids.values()) - LIST_MARGIN
    named = {request_id.lower(): request_id for request_id in ids}  # the event's spelling is the key
    found: dict[str, dict[str, Any]] = {}
    pages = 0
    for page in client.documents(company, document_type.path, {MODIFIED_FILTER: format_timestamp(since)}):
        pages += 1
        for document in page.documents():
            request_id = document.get("requestId")
            if isinstance(request_id, str) and request_id.lower() in named:
                found[named[request_id.lower()]] = document
        still = len(ids) - len(found)
        if still == 0 or pages >= still:  # the rest by id costs no more than paging on
            break
    return found, pages
