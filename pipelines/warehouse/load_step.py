"""The one load step of every caller (a scheduled run, a backfill, a sweep, the webhook listener).

choose → extract → normalise → [dataset lock: load → deletions → views] → history, on a pipeline
the caller restored from the warehouse. Callers differ only in `choose`: a run lists companies
and reads each one's documents since its cursor; the listener hands over documents it read by id
(and, being small and frequent, extracts under the lock from the newest stored schema). Everything
else is done here, the same way for all of them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import dlt
from dlt.destinations.sql_client import SqlClientBase
from dlt.extract.source import DltSource

from approvalmax_pipeline.pipelines.warehouse.dataset_lock import dataset_lock
from approvalmax_pipeline.pipelines.warehouse.deletions import Deletions
from approvalmax_pipeline.pipelines.warehouse.factory import loader_file_format, resolve_destination
from approvalmax_pipeline.pipelines.warehouse.faults import with_warehouse_retries
from approvalmax_pipeline.pipelines.warehouse.phases import Phases
from approvalmax_pipeline.pipelines.warehouse.run_history import record_history
from approvalmax_pipeline.pipelines.warehouse.target import Target
from approvalmax_pipeline.pipelines.warehouse.views import create_views
from approvalmax_pipeline.pipelines.warehouse.working_folder import adopt_stored_schema, busy_error, duckdb_lock_error
from approvalmax_pipeline.sources.approvalmax.state_layout import SOURCE_NAME
from approvalmax_pipeline.sources.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

Deleter = Callable[[dlt.Pipeline, SqlClientBase[Any]], Deletions]


@dataclass
class Chosen:
    """What a caller chose to load: a dlt source (None: nothing to extract) and the deletions to
    apply after the load, on the same connection as the views.

    `extract_under_lock` is for small, frequent loads (the listener's batches): they extract and
    normalise holding the dataset lock, from the newest schema stored in the dataset, so that a
    merge replaces a document's nested rows in every table another pipeline has seen them in. A
    run extracts for minutes and does it before taking the lock, from the schema it restored."""

    source: DltSource | None
    deletions: Deleter | None = None
    extract_under_lock: bool = False


@dataclass
class Loaded:
    """What the step did, for the summary, --json and run_history."""

    pipeline: dlt.Pipeline
    phases: Phases
    load_id: str | None = None
    table_rows: dict[str, int] = field(default_factory=dict)
    deletions: Deletions = field(default_factory=Deletions)
    views: tuple[str, ...] = ()


@dataclass
class Views:
    """The schema the views were last made for: a caller that loads often (the listener) remakes
    them only when tables or columns changed; a run starts from a new one, so it always makes them."""

    made_for: str | None = None


class HistoryLog:
    """run_history rows, written by `record_history` at most every `every_seconds` (0: at once);
    rows in between are summed into one per company and resource; `after`: the step's own error."""

    def __init__(self, target: Target, every_seconds: float = 0.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self.target = target
        self.every_seconds = every_seconds
        self._clock = clock
        self._rows: list[dict[str, Any]] = []
        self._written_at = clock.monotonic()

    def add(self, rows: list[dict[str, Any]], after: BaseException | None = None) -> None:
        self._rows.extend(rows)
        self.flush(force=False, after=after)

    def flush(self, force: bool = True, after: BaseException | None = None) -> None:
        if not self._rows or (not force and self._clock.monotonic() - self._written_at < self.every_seconds):
            return
        rows = self._rows if self.every_seconds <= 0 else merge_history(self._rows)
        self._rows, self._written_at = [], self._clock.monotonic()
        record_history(self.target, rows, after=after, keep_going=self.every_seconds > 0)


HistoryRows = Callable[[Loaded | None, BaseException | None], list[dict[str, Any]]]


def load_step(
    pipeline: dlt.Pipeline,
    target: Target,
    choose: Callable[[], Chosen],
    history: HistoryLog,
    history_rows: HistoryRows,
    views: Views | None = None,
    on_phase: Callable[[str], None] = lambda phase: None,
    phases: Phases | None = None,
) -> Loaded:
    """Load what `choose` picks through `pipeline` (restored from the warehouse by the caller:
    `working_folder.restored_pipeline`), and record it.

    `history_rows` turns the outcome (or the error, which is raised again) into run_history rows;
    `phases` (the caller's, when it timed a phase of its own before) gets each phase's seconds."""
    loaded = Loaded(pipeline, phases or Phases())
    try:
        _load(loaded, target, choose(), views or Views(), on_phase)
    except Exception as exc:
        rows = history_rows(None, exc)
        with loaded.phases.timed("run_history"):
            history.add(rows, after=exc)
        raise
    rows = history_rows(loaded, None)
    with loaded.phases.timed("run_history"):
        history.add(rows)
    return loaded


def _load(loaded: Loaded, target: Target, chosen: Chosen, views: Views, on_phase: Callable[[str], None]) -> None:
    pipeline, phases = loaded.pipeline, loaded.phases
    on_phase("loading")
    if chosen.source is not None and not chosen.extract_under_lock:
        _extract_and_normalize(pipeline, target, chosen.source, loaded)
    with contextlib.ExitStack() as locked:
        # other pipelines may load into this dataset at the same time
        locked.enter_context(dataset_lock(pipeline, target.lock_home, retry_seconds=target.retry_seconds))
        _under_lock(loaded, target, chosen, views, on_phase)
        # releasing a DuckDB file's lock checkpoints what the load wrote into the file (open_database.py):
        # a fault there (a full disk) is the load's, named like one; once released there is nothing to retry
        with phases.timed("load"):
            with_warehouse_retries("loading", locked.close, replace(target, retry_seconds=0), pipeline)
    on_phase("done")


def _under_lock(loaded: Loaded, target: Target, chosen: Chosen, views: Views, on_phase: Callable[[str], None]) -> None:
    pipeline, phases = loaded.pipeline, loaded.phases
    if chosen.source is not None:
        if chosen.extract_under_lock:
            # no other load can store a newer one until this one is in
            with_warehouse_retries("reading the stored schema", lambda: adopt_stored_schema(pipeline), target)
            _extract_and_normalize(pipeline, target, chosen.source, loaded)
        try:
            with phases.timed("load"):
                info = with_warehouse_retries("loading", pipeline.load, target, pipeline)
        except Exception as exc:
            locked = duckdb_lock_error(exc)
            if locked is not None:
                raise busy_error(locked) from exc
            raise
        loaded.load_id = info.loads_ids[-1] if info is not None and info.loads_ids else None
    schema = pipeline.schemas.get(SOURCE_NAME) if SOURCE_NAME in pipeline.schemas else None
    remake_views = schema is not None and schema.version_hash != views.made_for  # new tables or columns
    if chosen.deletions is None and not remake_views:
        return  # a listener batch of known tables and no 404: no connection to open

    def deletions_and_views() -> None:  # retried whole, on a new connection
        with pipeline.sql_client() as sql:  # one connection for both
            on_phase("deletions")
            if chosen.deletions is not None:
                with phases.timed("deletions"):
                    loaded.deletions = chosen.deletions(pipeline, sql)
            on_phase("views")
            if remake_views and schema is not None:
                with phases.timed("views"):
                    loaded.views = tuple(create_views(pipeline, sql))
                views.made_for = schema.version_hash

    with_warehouse_retries("deletions and views", deletions_and_views, target, pipeline)


def _extract_and_normalize(pipeline: dlt.Pipeline, target: Target, source: DltSource, loaded: Loaded) -> None:
    destination = resolve_destination(target.destination)
    with loaded.phases.timed("extract"):
        pipeline.extract(source, loader_file_format=loader_file_format(destination))  # type: ignore[arg-type]
    with loaded.phases.timed("normalize"):
        normalized = pipeline.normalize()
    loaded.table_rows = {
        table: count
        for table, count in (normalized.row_counts.items() if normalized is not None else [])
        if not table.startswith("_dlt")
    }


def merge_history(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as one per company and resource: first start, last finish, counts summed."""
    merged: dict[tuple[Any, Any], dict[str, Any]] = {}
    for row in rows:
        key = (row.get("company_id"), row.get("resource"))
        kept = merged.get(key)
        if kept is None:
            merged[key] = dict(row)
            continue
        kept["finished_at"] = row["finished_at"]
        for name in ("rows_loaded", "requests", "retries"):
            kept[name] = (kept.get(name) or 0) + (row.get(name) or 0)
    return list(merged.values())
