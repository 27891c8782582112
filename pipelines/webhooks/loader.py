"""The listener's loading side: queued events, in micro-batches, refetched by id and loaded.

Each batch takes the oldest events, keeps one per document, and reads each document as it is
now (refetch.py: by list when that costs fewer calls, else by id), so duplicate and out-of-order
events change nothing. The documents go through the load step (warehouse/load_step.py) like a run's, by a
pipeline of its own (`<pipeline>_listener`, which keeps no cursors), so they share its sinks,
tables, merge, dataset lock, views and history; a 404 marks the document deleted by the sweeps'
rule. Events leave the queue only once their batch has committed; a `RequestType` no document
type names is logged and dropped (the next sweep covers that document).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
from dlt.destinations.sql_client import SqlClientBase

from approvalmax_pipeline.pipelines.warehouse.deletions import Deletions, apply_deletions
from approvalmax_pipeline.pipelines.warehouse.faults import is_warehouse_fault
from approvalmax_pipeline.pipelines.warehouse.load_step import Chosen, HistoryLog, Loaded, Views, load_step
from approvalmax_pipeline.pipelines.warehouse.run_history import RunRecord, history_rows
from approvalmax_pipeline.pipelines.warehouse.target import Target
from approvalmax_pipeline.pipelines.warehouse.working_folder import restored_pipeline
from approvalmax_pipeline.pipelines.webhooks.queue import EventQueue, QueuedEvent
from approvalmax_pipeline.pipelines.webhooks.refetch import Key, refetch
from approvalmax_pipeline.pipelines.webhooks.spending import Spending
from approvalmax_pipeline.sources.approvalmax.connector import Connector
from approvalmax_pipeline.sources.approvalmax.cursors import Window
from approvalmax_pipeline.sources.approvalmax.settings import DocumentType, resource_for_request_type
from approvalmax_pipeline.sources.approvalmax.timestamps import parse_timestamp
from approvalmax_pipeline.sources.errors import first_line

log = logging.getLogger(__name__)

BATCH_EVENTS = 500
# run_history rows are written at most this often (a dlt run of its own costs about 0.3 s): the
# batches in between are summed into one row per company and resource.
HISTORY_EVERY_SECONDS = 60.0
STAMP_TRUSTED_FOR = timedelta(days=1)


@dataclass
class LoaderStatus:
    """What /readyz and the shutdown report read."""

    batches: int = 0
    events: int = 0
    documents: int = 0
    deleted: int = 0
    list_pages: int = 0  # API calls (the stop line): list pages read, and documents read by id
    reads_by_id: int = 0
    last_error: str | None = None
    last_batch_at: float | None = None
    skipped_types: set[str] = field(default_factory=set)


def oldest_change(events: list[QueuedEvent]) -> datetime:
    """When the oldest of a document's events happened: its TimeStamp, or its receipt if earlier
    (or if it has none), so a sender's clock ahead of ours cannot start a list read too late. A
    TimeStamp more than STAMP_TRUSTED_FOR before its receipt (a default 0001-01-01, a wrong clock)
    is not believed: the list then starts late, and what it misses is read by id."""
    times = []
    for queued in events:
        received = datetime.fromtimestamp(queued.received_at, UTC)
        stamped = parse_timestamp(queued.event.timestamp) if queued.event.timestamp else None
        believed = stamped is not None and received - stamped <= STAMP_TRUSTED_FOR
        times.append(min(received, stamped) if stamped is not None and believed else received)
    return min(times)


class WebhookLoader:
    def __init__(self, connector: Connector, queue: EventQueue, target: Target, batch_seconds: float) -> None:
        self.connector = connector
        self.queue = queue
        self.target = target
        self.batch_seconds = batch_seconds
        self.status = LoaderStatus()
        self._clock = connector.clock
        self._types = {doc.resource: doc for doc in connector.document_types}
        self._views = Views()
        self._history = HistoryLog(target, HISTORY_EVERY_SECONDS, self._clock)
        self._pipeline: dlt.Pipeline | None = None  # restored once, and again after a failed batch
        settings = connector.settings
        self._spending = Spending(settings.rate_limit_per_minute, settings.rate_limit_window_seconds, self._clock)

    def run(self, stop: threading.Event, on_batch: Callable[[], None] = lambda: None) -> None:
        """Load batches until `stop` is set; the batch under way finishes first."""
        try:
            while not stop.is_set():
                # companies whose budget share is spent for now are left queued, gathering events
                waiting, wait = self._spending.deferred()
                batch = self.queue.take(BATCH_EVENTS, skip=waiting)
                if not batch:
                    self._history.flush(force=False)
                    stop.wait(min(wait, self.batch_seconds) if wait else self.batch_seconds)
                    continue
                try:
                    self.load(batch)
                except Exception as exc:  # a bug or an event nobody foresaw: its attempts count, the loader lives
                    self.status.last_error = first_line(exc)
                    log.exception("webhook batch of %d events failed unexpectedly", len(batch))
                    self._gave_up(self.queue.failed(batch, self.status.last_error))
                on_batch()
                if self.status.last_error is not None:
                    stop.wait(self.batch_seconds)  # an API or warehouse failure: do not spin on it
        finally:
            self._history.flush(force=True)

    def load(self, batch: list[QueuedEvent]) -> None:
        started = self._clock.monotonic()
        outcomes: dict[int, str] = {}
        wanted: dict[Key, list[QueuedEvent]] = {}
        for queued in batch:
            resource = resource_for_request_type(self.connector.document_types, queued.event.request_type)
            if resource is None:
                if queued.event.request_type not in self.status.skipped_types:
                    log.warning(
                        "webhook RequestType %r is not mapped to a table: left to the next sweep",
                        queued.event.request_type,
                    )
                    self.status.skipped_types.add(queued.event.request_type)
                outcomes[queued.id] = "unknown type"
                continue
            wanted.setdefault((queued.event.company_id, resource, queued.event.request_id), []).append(queued)
        since = {key: oldest_change(events) for key, events in wanted.items()}
        read = refetch(self.connector.client, self._types, since)
        self._spending.spent(started, read.calls)
        fetched, failed = read.documents, read.failed
        ok = [q for key, events in wanted.items() if key not in failed for q in events]
        skipped = [q for q in batch if outcomes.get(q.id) == "unknown type"]
        try:
            if fetched:
                self._load(fetched)
        except Exception as exc:  # nothing of this batch counts; its events stay queued
            self._pipeline = None  # the next batch starts from the warehouse again
            self.status.last_error = first_line(exc)
            if is_warehouse_fault(exc):  # not the events' fault: they keep their attempts
                log.error("webhook batch of %d events waits for the warehouse: %s", len(batch), self.status.last_error)
                return
            log.error("webhook batch of %d events not loaded: %s", len(batch), self.status.last_error)
            self._gave_up(self.queue.failed(batch, self.status.last_error))
            return
        for key, document in fetched.items():
            for queued in wanted[key]:
                outcomes[queued.id] = "loaded" if document is not None else "deleted"
        self.queue.done([*ok, *skipped], outcomes)
        if failed:
            reason = "; ".join(sorted(set(failed.values())))[:500]
            self._gave_up(self.queue.failed([q for key in failed for q in wanted[key]], reason))
        self.status.last_error = next(iter(failed.values()), None)
        self.status.batches += 1
        self.status.events += len(ok) + len(skipped)
        self.status.documents += sum(1 for d in fetched.values() if d is not None)
        self.status.deleted += sum(1 for d in fetched.values() if d is None)
        self.status.last_batch_at = self._clock.now().timestamp()
        self.status.list_pages += read.list_pages
        self.status.reads_by_id += read.by_id
        log.info(
            "webhook batch: %d events, %d documents (%d list pages, %d by id) in %.2f s",
            len(batch),
            len(fetched),
            read.list_pages,
            read.by_id,
            self._clock.monotonic() - started,
        )

    def _gave_up(self, events: list[QueuedEvent]) -> None:
        for queued in events:
            log.warning(
                "webhook %s %s %s given up after %d attempts: the next sweep covers it",
                queued.event.company_id,
                queued.event.request_type,
                queued.event.request_id,
                queued.attempts + 1,
            )

    def _load(self, fetched: dict[Key, dict[str, Any] | None]) -> None:
        """The documents read (and the 404s) through the load step."""
        hard = self.connector.settings.hard_deletes
        present: dict[str, dict[str, list[dict[str, Any]]]] = {}
        gone: dict[str, dict[str, list[str]]] = {}
        for (company, resource, request_id), document in fetched.items():
            if document is None:
                gone.setdefault(resource, {}).setdefault(company, []).append(request_id)
            else:
                present.setdefault(resource, {}).setdefault(company, []).append(document)
        options = self.connector.extract_options(Window(None, None))
        record = RunRecord(self.target.pipeline_name, self._clock, resources=tuple(present))
        record.companies = sorted({company for company, _r, _i in fetched})
        types: list[DocumentType] = [self._types[resource] for resource in present]

        def deletions(pipeline: dlt.Pipeline, sql: SqlClientBase[Any]) -> Deletions:
            return apply_deletions(pipeline, gone, hard, sql, self._clock)

        def choose() -> Chosen:
            source = self.connector.fetched_source(present, options) if present else None
            return Chosen(source, deletions if gone else None, extract_under_lock=True)

        def rows(loaded: Loaded | None, error: BaseException | None) -> list[dict[str, Any]]:
            # a failed batch stays queued and is tried again: only what loaded is history
            if loaded is None:
                return []
            return history_rows(record, types, options.report, None, {}, loaded.load_id)

        if self._pipeline is None:
            self._pipeline = restored_pipeline(self.target)
        load_step(self._pipeline, self.target, choose, self._history, rows, self._views)
