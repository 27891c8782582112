"""Document versions already loaded that the lookback fetches again, so a quiet run loads nothing.

An incremental run asks for documents modified since the cursor less the lookback, so it
sees again the documents of the last few minutes. Their exact versions (request id and
`modifiedAt`) are kept with the cursor (state_layout.py); a fetched document with a kept version
is skipped, while a late write, whose version is new, still loads.
"""

from __future__ import annotations

from datetime import datetime

from .timestamps import format_timestamp

# This run's versions of a company are trimmed once they number this many (a backfill's).
TRIM_AT = 10_000


class LoadedVersions:
    def __init__(self, stored: dict[str, dict[str, str]]) -> None:
        self._stored = stored  # company -> request id -> modifiedAt, in the resource's positions
        self._fetched: dict[str, dict[str, datetime]] = {}
        self._trim_at: dict[str, int] = {}

    def is_loaded(self, company_id: str, request_id: object, modified: datetime | None) -> bool:
        """Whether this version was loaded by an earlier run; remembers it for the next one."""
        if not isinstance(request_id, str) or not request_id or modified is None:
            return False
        self._fetched.setdefault(company_id, {})[request_id] = modified
        stored = self._stored.get(company_id, {}).get(request_id)
        return stored is not None and stored == format_timestamp(modified)  # formatted only when kept

    def trim(self, company_id: str, below: datetime) -> None:
        """Forget this run's versions older than `below`, a time the next run's floor cannot fall
        under, so a backfill does not keep every document's version until its end."""
        fetched = self._fetched.get(company_id)
        if fetched is None or len(fetched) < self._trim_at.get(company_id, TRIM_AT):
            return
        kept = {request_id: modified for request_id, modified in fetched.items() if modified >= below}
        self._fetched[company_id] = kept
        self._trim_at[company_id] = max(TRIM_AT, 2 * len(kept))

    def settle(self, company_id: str, next_floor: datetime | None) -> None:
        """The company's pages are all in: keep the versions the next run will fetch again."""
        fetched = self._fetched.pop(company_id, {})
        if next_floor is None:
            self._stored.pop(company_id, None)
            return
        self._stored[company_id] = {
            request_id: format_timestamp(modified) for request_id, modified in fetched.items() if modified >= next_floor
        }

    def forget(self, company_id: str) -> None:
        """The company failed: its kept versions stay as they were."""
        self._fetched.pop(company_id, None)
