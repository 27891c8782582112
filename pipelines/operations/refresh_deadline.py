"""When the refresh token family dies, by both readings of ApprovalMax's "30 days".

ApprovalMax documents 30 days. Its identity server looks like Duende IdentityServer, whose
default counts from consent (absolute); it is also reported to slide with every refresh. Until
a family is seen refreshing after its absolute deadline (which proves sliding, and is recorded
in the token store as `refresh_count` past that day), both are shown, and alerts use the earlier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from approvalmax_pipeline.sources.approvalmax.settings import REFRESH_TOKEN_LIFETIME_DAYS
from approvalmax_pipeline.sources.oauth_tokens.record import TokenRecord


@dataclass(frozen=True)
class RefreshDeadlines:
    sliding: datetime | None  # 30 days after the newest refresh token was issued
    absolute: datetime | None  # 30 days after consent (login or import)

    @property
    def earliest(self) -> datetime | None:
        known = [d for d in (self.sliding, self.absolute) if d is not None]
        return min(known) if known else None


def refresh_deadlines(record: TokenRecord, lifetime_days: float = REFRESH_TOKEN_LIFETIME_DAYS) -> RefreshDeadlines:
    lifetime = timedelta(days=lifetime_days)
    obtained = record.refresh_token_obtained_at or record.authorized_at
    sliding = record.refresh_token_expires_at or (obtained + lifetime if obtained else None)
    absolute = record.authorized_at + lifetime if record.authorized_at else None
    if record.sliding_seen_at is not None:
        absolute = None  # refreshed past it: the lifetime slides
    return RefreshDeadlines(sliding, absolute)
