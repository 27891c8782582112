"""How one run reads the API: lookback or backfill window, failure policy, sink, document types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from ..clock import SYSTEM_CLOCK, Clock
from .cursors import Window
from .report import RunReport
from .settings import DOCUMENT_TYPES, DocumentType
from .state_layout import Positions


@dataclass(frozen=True)
class ExtractOptions:
    """Built by the composition root (`connector.py`) from settings; tests build their own."""

    lookback: timedelta = timedelta(minutes=10)
    window: Window | None = None
    report: RunReport = field(default_factory=RunReport)
    # Raise on a company's failure instead of recording it (schedulers show a failed task).
    strict: bool = False
    # Hand dlt Arrow tables (fast); False uses dlt's row-by-row normaliser for the same tables.
    arrow: bool = True
    # Pages smaller than this go the json way even with `arrow` (None: arrow.sink.ARROW_MIN_PAGE_BYTES);
    # tests set 0 to put every page through Arrow.
    arrow_min_page_bytes: int | None = None
    # The document types to read: the built-in table and any configured ones (config.document_types).
    document_types: tuple[DocumentType, ...] = DOCUMENT_TYPES
    # Sweeps (sweeps.py): a company whose last sweep is older than this reads its lists whole
    # (None: only a first load, or `reconcile`); `reconcile` sweeps every company now.
    reconcile_every: timedelta | None = timedelta(hours=24)
    reconcile: bool = False
    # Every loaded version also goes to request_versions (history.py).
    history: bool = True
    # Every "now" of the extract (sweep times, the listener's fetch time).
    clock: Clock = SYSTEM_CLOCK
    # Where each company starts (state_layout.py), read by the caller as it restored the pipeline;
    # None: read from the running pipeline's warehouse on first use (a library user's run).
    positions: Positions | None = None
