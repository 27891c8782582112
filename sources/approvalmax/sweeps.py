"""When a company's documents are read whole (a sweep), and what a complete sweep proves.

An incremental run asks for documents modified since its cursor, so it never learns that a
document was deleted, nor sees a change that did not move `modifiedAt`. A sweep lists every
document of a type for a company with no filter and loads each one again (a merge: nothing is
duplicated), so each row it listed carries the sweep's `_dlt_load_id`. Once the listing is
complete, a row of that company with an older load id and no `deleted_at` was not listed:
it is a candidate, which `pipelines/warehouse/deletions.py` asks for by id (404: deleted) after the load.
A failed page or company records no sweep, and a backfill window never sweeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class SweepPolicy:
    """`every`: a company's last sweep older than this sweeps again (None: only when forced)."""

    now: datetime
    load_id: str
    every: timedelta | None = timedelta(hours=24)
    forced: bool = False  # `approvalmax run --reconcile`

    def due(self, last: datetime | None) -> bool:
        """Whether a company last swept at `last` sweeps now (a first full load always counts as one)."""
        if self.forced:
            return True
        if self.every is None:
            return False
        return last is None or self.now - last >= self.every  # never swept: an older install sweeps once
