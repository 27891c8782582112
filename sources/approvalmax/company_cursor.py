"""Where one company's documents of one type start and where the cursor goes: cursor, loaded versions, window.

The extract thread owns these objects; fetch threads only see the floor, computed before they start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from .cursors import Window, dump_cursor, load_cursor, next_cursor, request_floor
from .sink import Version
from .state_layout import ResourceState
from .sweeps import SweepPolicy
from .versions import LoadedVersions


class CompanyCursor:
    """One company's position in one resource: `floor` to ask from, `observe` each page, then
    `commit` once every page is in (or `abandon` when the company failed).

    A sweep (`sweeping`) reads the whole list and loads every document in it, loaded before or
    not, so that afterwards every row it did not list is older than its load (sweeps.py)."""

    def __init__(
        self,
        company_id: str,
        state: dict[str, Any] | None,
        lookback: timedelta,
        window: Window | None,
        on_older: Callable[[datetime], None],
        sweep: SweepPolicy | None = None,
    ) -> None:
        self.company_id = company_id
        # the resource's positions (state_layout.py); None for a backfill, which moves nothing
        self._state = ResourceState(state) if state is not None else None
        self._versions = LoadedVersions(self._state.loaded_versions()) if self._state is not None else None
        self._lookback = lookback
        self._window = window
        self._on_older = on_older
        self._sweep = sweep
        self._started: datetime | None = None
        self._newest: datetime | None = None
        self.sweeping = False
        if window is not None:
            self.floor = window.since
        else:
            assert self._state is not None
            self.floor = request_floor(self._cursor(), lookback)
            last = self._state.last_sweep_at(company_id)
            # a first full load lists everything anyway, so it counts as a sweep
            self.sweeping = sweep is not None and (self.floor is None or sweep.due(load_cursor(last)))
            if self.sweeping:
                self.floor = None

    def _cursor(self) -> datetime | None:
        return load_cursor(self._state.cursor(self.company_id)) if self._state is not None else None

    def observe(self, versions: Iterable[Version], requested_at: datetime) -> list[bool]:
        """Which documents of a page to load: at or after the floor (the API may not filter: see
        settings.MODIFIED_FILTER), inside the window, and not a version an earlier run loaded."""
        if self._started is None:
            self._started = requested_at  # the first page's request: the cursor never passes it
        keep = [self._wanted(request_id, modified) for request_id, modified in versions]
        if self._versions is not None and self._newest is not None:
            # The next floor is at least this: the cursor never moves back.
            self._versions.trim(self.company_id, min(self._newest, self._started) - self._lookback)
        return keep

    def _wanted(self, request_id: object, modified: datetime | None) -> bool:
        if self.floor is not None and modified is not None and modified < self.floor:
            self._on_older(self.floor)
            return False
        if self._window is not None and not self._window.admits(modified):
            return False
        if modified is not None and (self._newest is None or modified > self._newest):
            self._newest = modified
        if self._versions is None:
            return True
        loaded = self._versions.is_loaded(self.company_id, request_id, modified)  # remembers it either way
        return self.sweeping or not loaded

    def commit(self) -> None:
        """All pages are in: move the cursor and keep the versions the next run fetches again."""
        if self._state is None or self._versions is None:
            return
        self._state.set_not_applicable(self.company_id, False)  # the type exists for this company now
        if self._started is None:
            return
        if self.sweeping and self._sweep is not None:
            # Rows of this company older than this load and not deleted were not listed: sweeps.py checks them.
            self._state.record_sweep(self.company_id, dump_cursor(self._started), self._sweep.load_id)
        moved = next_cursor(self._cursor(), self._newest, self._started)
        if moved is not None:
            self._state.set_cursor(self.company_id, dump_cursor(moved))
        self._versions.settle(self.company_id, request_floor(moved, self._lookback))

    def abandon(self) -> None:
        """The company failed: its cursor and kept versions stay as they were."""
        if self._versions is not None:
            self._versions.forget(self.company_id)

    def not_applicable(self) -> bool:
        """The company does not have this type (404); True the first run that sees it, to report it once."""
        if self._state is None:
            return True
        if self._state.is_not_applicable(self.company_id):
            return False
        self._state.set_not_applicable(self.company_id, True)
        return True


class ResourceCursors:
    """Every company's CompanyCursor of one resource, made on first use."""

    def __init__(
        self,
        state: dict[str, Any] | None,
        lookback: timedelta,
        window: Window | None = None,
        on_older: Callable[[datetime], None] = lambda floor: None,
        sweep: SweepPolicy | None = None,
    ) -> None:
        self._state = state
        self._lookback = lookback
        self._window = window
        self._on_older = on_older
        self._sweep = sweep
        self._companies: dict[str, CompanyCursor] = {}

    def __getitem__(self, company_id: str) -> CompanyCursor:
        cursor = self._companies.get(company_id)
        if cursor is None:
            cursor = CompanyCursor(company_id, self._state, self._lookback, self._window, self._on_older, self._sweep)
            self._companies[company_id] = cursor
        return cursor
