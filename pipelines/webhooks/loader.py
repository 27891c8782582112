"""The listener's loading side: queued events, in micro-batches, refetched by id and loaded.

Each batch takes the oldest events, keeps one per document, and asks the API for each document
by id: the answer is the document as it is now, so duplicate and out-of-order events change
nothing. The documents load through the same sinks, tables, merge and history as a run, by a
pipeline of its own (`<pipeline>_listener`, which keeps no cursors) under the dataset's lock,
so it never loads at the same time as a scheduled run; a 404 marks the document deleted by the
sweeps' rule. Events leave the queue only once their batch has committed; an unknown
`RequestType` is logged and dropped (the next sweep covers that document).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.common.destination.client import WithStateSync
from dlt.common.schema import Schema

from approvalmax_pipeline.pipelines.warehouse.dataset_lock import dataset_lock
from approvalmax_pipeline.pipelines.warehouse.deletions import apply_deletions
from approvalmax_pipeline.pipelines.warehouse.factory import loader_file_format
from approvalmax_pipeline.pipelines.warehouse.run_history import RunRecord, history_rows, record_history
from approvalmax_pipeline.pipelines.warehouse.state import SOURCE_NAME
from approvalmax_pipeline.pipelines.warehouse.views import create_views
from approvalmax_pipeline.pipelines.warehouse.working_folder import restored_pipeline
from approvalmax_pipeline.pipelines.webhooks.queue import EventQueue, QueuedEvent
from approvalmax_pipeline.sources.approvalmax.connector import Connector
from approvalmax_pipeline.sources.approvalmax.cursors import Window
from approvalmax_pipeline.sources.approvalmax.settings import DocumentType
from approvalmax_pipeline.sources.errors import ConnectorError, first_line

log = logging.getLogger(__name__)

BATCH_EVENTS = 500
# run_history rows are written at most this often (a dlt run of its own costs about 0.3 s): the
# batches in between are summed into one row per company and resource.
HISTORY_EVERY_SECONDS = 60.0


@dataclass
class LoaderStatus:
    """What /readyz and the shutdown report read."""

    batches: int = 0
    events: int = 0
    documents: int = 0
    deleted: int = 0
    last_error: str | None = None
    last_batch_at: float | None = None
    skipped_types: set[str] = field(default_factory=set)


Key = tuple[str, str, str]  # company, resource, request id


class WebhookLoader:
    def __init__(
        self,
        connector: Connector,
        queue: EventQueue,
        destination: Destination[Any, Any],
        dataset: str,
        pipeline_name: str,
        pipelines_dir: str | None,
        batch_seconds: float,
    ) -> None:
        self.connector = connector
        self.queue = queue
        self.destination = destination
        self.dataset = dataset
        self.pipeline_name = pipeline_name
        self.pipelines_dir = pipelines_dir
        self.batch_seconds = batch_seconds
        self.status = LoaderStatus()
        self._types = {doc.resource: doc for doc in connector.document_types}
        self._pipeline: dlt.Pipeline | None = None
        self._history: list[dict[str, Any]] = []
        self._views_for: str | None = None  # the schema the views were last made for
        self._history_at = time.monotonic()

    def run(self, stop: threading.Event, on_batch: Callable[[], None] = lambda: None) -> None:
        """Load batches until `stop` is set; the batch under way finishes first."""
        try:
            while not stop.is_set():
                batch = self.queue.take(BATCH_EVENTS)
                if not batch:
                    self.flush_history(force=False)
                    stop.wait(self.batch_seconds)
                    continue
                self.load(batch)
                on_batch()
                if self.status.last_error is not None:
                    stop.wait(self.batch_seconds)  # an API or warehouse failure: do not spin on it
        finally:
            self.flush_history(force=True)

    def flush_history(self, force: bool) -> None:
        """Write the batches' run_history rows, summed per company and resource."""
        if not self._history or (not force and time.monotonic() - self._history_at < HISTORY_EVERY_SECONDS):
            return
        rows, self._history, self._history_at = merge_history(self._history), [], time.monotonic()
        record_history(self.destination, self.dataset, self.pipelines_dir, self.connector.settings.token_store, rows)

    def load(self, batch: list[QueuedEvent]) -> None:
        started = time.monotonic()
        outcomes: dict[int, str] = {}
        wanted: dict[Key, list[QueuedEvent]] = {}
        for queued in batch:
            resource = queued.event.resource
            if resource is None or resource not in self._types:
                if queued.event.request_type not in self.status.skipped_types:
                    log.warning(
                        "webhook RequestType %r is not mapped to a table: left to the next sweep",
                        queued.event.request_type,
                    )
                    self.status.skipped_types.add(queued.event.request_type)
                outcomes[queued.id] = "unknown type"
                continue
            wanted.setdefault((queued.event.company_id, resource, queued.event.request_id), []).append(queued)
        fetched, failed = self._fetch(list(wanted))
        ok = [q for key, events in wanted.items() if key not in failed for q in events]
        skipped = [q for q in batch if outcomes.get(q.id) == "unknown type"]
        try:
            if fetched:
                self._load(fetched)
        except Exception as exc:  # nothing of this batch counts; its events stay queued
            self.status.last_error = first_line(exc)
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
        self.status.last_batch_at = time.time()
        log.info(
            "webhook batch: %d events, %d documents in %.2f s", len(batch), len(fetched), time.monotonic() - started
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

    def _fetch(self, keys: list[Key]) -> tuple[dict[Key, dict[str, Any] | None], dict[Key, str]]:
        """Each document by id (None: the API answered 404), and the keys whose request failed."""
        client = self.connector.client

        def one(key: Key) -> tuple[Key, dict[str, Any] | None, str | None]:
            company, resource, request_id = key
            try:
                return key, client.document(company, self._types[resource].path, request_id), None
            except ConnectorError as exc:
                return key, None, first_line(exc)

        fetched: dict[Key, dict[str, Any] | None] = {}
        failed: dict[Key, str] = {}
        if not keys:
            return fetched, failed
        workers = client.in_flight(len({company for company, _r, _i in keys}))
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(keys)))) as pool:
            for key, document, error in pool.map(one, keys):
                if error is None:
                    fetched[key] = document
                else:
                    log.warning("webhook %s %s %s: not fetched (%s); retried next batch", *key, error)
                    failed[key] = error
        return fetched, failed

    def _pipeline_now(self) -> dlt.Pipeline:
        if self._pipeline is None:
            self._pipeline = restored_pipeline(
                self.destination,
                self.dataset,
                self.pipeline_name,
                self.pipelines_dir,
                0.0,
                self.connector.settings.token_store,
            )
        return self._pipeline

    def _load(self, fetched: dict[Key, dict[str, Any] | None]) -> None:
        from approvalmax_pipeline.sources.approvalmax.source import fetched_documents_source

        settings = self.connector.settings
        pipeline = self._pipeline_now()
        present: dict[str, dict[str, list[dict[str, Any]]]] = {}
        gone: dict[str, dict[str, list[str]]] = {}
        for (company, resource, request_id), document in fetched.items():
            if document is None:
                gone.setdefault(resource, {}).setdefault(company, []).append(request_id)
            else:
                present.setdefault(resource, {}).setdefault(company, []).append(document)
        options = self.connector.extract_options(Window(None, None))
        record = RunRecord(self.pipeline_name, resources=tuple(present), cursors_before={})
        record.companies = sorted({company for company, _r, _i in fetched})
        types: list[DocumentType] = [self._types[resource] for resource in present]
        load_id = None
        with dataset_lock(pipeline, settings.token_store):
            adopt_stored_schema(pipeline)
            if present:
                source = fetched_documents_source(types, present, datetime.now(UTC), options)
                pipeline.extract(source, loader_file_format=loader_file_format(self.destination))  # type: ignore[arg-type]
                pipeline.normalize()
                loaded = pipeline.load()
                load_id = loaded.loads_ids[-1] if loaded.loads_ids else None
            if gone:
                apply_deletions(pipeline, self._types, gone, settings.hard_deletes)
            if pipeline.default_schema.version_hash != self._views_for:  # new tables or columns
                create_views(pipeline)
                self._views_for = pipeline.default_schema.version_hash
        self._history.extend(history_rows(record, types, options.report, None, {}, load_id))


def adopt_stored_schema(pipeline: dlt.Pipeline) -> None:
    """Start each batch from the dataset's newest `approvalmax` schema, whoever stored it.

    dlt's merge replaces a document's nested rows only in the nested tables its schema knows hold
    data; a listener that had never seen a document with tracking rows would leave a changed
    document's old tracking rows behind. The scheduled runs' schema knows them all.
    """
    with pipeline.destination_client() as client:
        stored = client.get_stored_schema(SOURCE_NAME) if isinstance(client, WithStateSync) else None
    if stored is None:
        return
    schema = Schema.from_dict(json.loads(stored.schema))
    if SOURCE_NAME in pipeline.schemas and pipeline.schemas[SOURCE_NAME].version_hash == schema.version_hash:
        return
    pipeline.schemas.save_schema(schema)


def merge_history(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batches' rows as one per company and resource: first start, last finish, counts summed."""
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
