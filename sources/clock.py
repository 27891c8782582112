"""The one clock seam: wall time for cursors and tokens, monotonic time and sleep for pacing and retries.

Every component that reads the time or waits takes a `Clock`; tests hand in one they move by hand.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """The system's clock."""

    def now(self) -> datetime:
        """Aware UTC wall time."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = Clock()
