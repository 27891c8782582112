"""After a load: the documents a complete sweep did not list, asked for by id, and marked deleted.

A sweep (sources/approvalmax/sweeps.py) loads every document it lists with its load id, so a
row of that company with an older load id and no `deleted_at` was not listed. A listing is not
proof, though: a page that shifted while we read (offset paging, or a document deleted as we
paged) could skip one. So each candidate is fetched by id: a 404 marks it, a document that is
still there stays live, and an error leaves it for the next run. A sweep counts as checked once
every candidate answered, recorded in the dataset's `approvalmax_sweep_checks` table; until
then each run checks it again, so a run killed between its load and this step loses no mark.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dlt
from dlt.destinations.sql_client import SqlClientBase

from approvalmax_pipeline.pipelines.warehouse.views import DIALECTS, sql_session, translate
from approvalmax_pipeline.sources.approvalmax.client import ApprovalMaxClient
from approvalmax_pipeline.sources.approvalmax.hints import DELETED_AT
from approvalmax_pipeline.sources.approvalmax.positions import read_positions
from approvalmax_pipeline.sources.approvalmax.settings import DocumentType
from approvalmax_pipeline.sources.approvalmax.state_layout import SOURCE_NAME, Positions
from approvalmax_pipeline.sources.clock import SYSTEM_CLOCK, Clock
from approvalmax_pipeline.sources.errors import ConnectorError, first_line

log = logging.getLogger(__name__)

CHUNK = 500  # ids per IN list


@dataclass
class Deletions:
    """What the check found, for the run summary and --json."""

    checked: int = 0  # (company, resource) sweeps checked this run
    candidates: int = 0  # rows the sweeps did not list
    marked: dict[str, dict[str, int]] = field(default_factory=dict)  # company -> resource -> documents
    still_served: int = 0  # not listed, yet served by id: left live
    unanswered: int = 0  # the API failed to answer: checked again next run
    hard: bool = False

    @property
    def total(self) -> int:
        return sum(sum(by_resource.values()) for by_resource in self.marked.values())


CHECKS = "approvalmax_sweep_checks"  # resource, company_id, load_id: sweeps whose candidates all answered


# Companies per candidates query: a first load over 10,000 companies checks every one of them at
# once; one condition of a (company, load) pair per company took DuckDB 8 s a table at 10,000.
CANDIDATE_QUERY_COMPANIES = 1000


def mark_deleted(
    pipeline: dlt.Pipeline,
    client: ApprovalMaxClient,
    document_types: Sequence[DocumentType],
    hard: bool,
    sql: SqlClientBase[Any] | None = None,
    clock: Clock = SYSTEM_CLOCK,
    positions: Positions | None = None,
) -> Deletions:
    """Check every sweep not checked yet; call it under the dataset's lock, after the load.
    `positions`: the ones the load left (else read here)."""
    result = Deletions(hard=hard)
    tables = pipeline.default_schema.tables
    dialect = DIALECTS.get(pipeline.destination.destination_name if pipeline.destination else "duckdb", "duckdb")
    with sql_session(pipeline, sql) as sql:
        positions = positions if positions is not None else read_positions(pipeline, sql)
        recorded = positions.sweep_loads([doc.resource for doc in document_types])
        if not recorded:
            return result
        checks = sql.make_qualified_table_name(CHECKS)
        sql.execute_sql(
            translate(
                f"CREATE TABLE IF NOT EXISTS {checks} (resource VARCHAR, company_id VARCHAR, load_id VARCHAR)", dialect
            )
        )
        done = {
            (str(r), str(c)): str(load)
            for r, c, load in sql.execute_sql(f"SELECT resource, company_id, load_id FROM {checks}") or []
        }
        for doc in document_types:
            pending = {
                company: load_id
                for company, load_id in recorded.get(doc.resource, {}).items()
                if done.get((doc.resource, company)) != load_id
            }
            if pending and DELETED_AT in tables.get(doc.resource, {}).get("columns", {}):
                _check_table(
                    sql,
                    checks,
                    doc,
                    [t for t in tables if t.startswith(doc.resource + "__")],
                    pending,
                    client,
                    hard,
                    result,
                    clock,
                )
    return result


def _check_table(
    sql: SqlClientBase[Any],
    checks: str,
    doc: DocumentType,
    children: list[str],
    pending: dict[str, str],
    client: ApprovalMaxClient,
    hard: bool,
    result: Deletions,
    clock: Clock,
) -> None:
    """One document table: a query per CANDIDATE_QUERY_COMPANIES pending companies for their
    candidates, one transaction to apply."""
    companies = sorted(pending)
    candidates: dict[str, list[str]] = {}
    for start in range(0, len(companies), CANDIDATE_QUERY_COMPANIES):
        chunk = companies[start : start + CANDIDATE_QUERY_COMPANIES]
        # one list and the newest sweep's load in SQL (most sweeps of a run share it), each
        # company's own sweep load here
        rows = sql.execute_sql(
            f"SELECT company_id, request_id, _dlt_load_id FROM {sql.make_qualified_table_name(doc.resource)} "
            f"WHERE {DELETED_AT} IS NULL AND _dlt_load_id < %s AND company_id IN ({', '.join(['%s'] * len(chunk))})",
            max(pending[company] for company in chunk),
            *chunk,
        )
        for company, request_id, load_id in rows or []:
            if str(load_id) < pending[str(company)]:
                candidates.setdefault(str(company), []).append(str(request_id))
    finished: list[str] = []
    gone: dict[str, list[str]] = {}
    for company in companies:
        found = candidates.get(company, [])
        result.checked += 1
        result.candidates += len(found)
        gone[company], answered = _confirm(client, company, doc, found, result)
        if answered:
            finished.append(company)
    with sql.begin_transaction():
        for company, ids in gone.items():
            if ids:
                _apply(sql, doc.resource, children, company, ids, hard, clock.now())
                result.marked.setdefault(company, {})[doc.resource] = len(ids)
                log.info("%s %s: %d documents deleted in ApprovalMax", company, doc.resource, len(ids))
        if finished:
            marks = ", ".join(["%s"] * len(finished))
            sql.execute_sql(
                f"DELETE FROM {checks} WHERE resource = %s AND company_id IN ({marks})", doc.resource, *finished
            )
            values = ", ".join(["(%s, %s, %s)"] * len(finished))
            sql.execute_sql(
                f"INSERT INTO {checks} VALUES {values}",
                *[v for company in finished for v in (doc.resource, company, pending[company])],
            )


def apply_deletions(
    pipeline: dlt.Pipeline,
    gone: Mapping[str, Mapping[str, list[str]]],
    hard: bool,
    sql: SqlClientBase[Any] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Deletions:
    """Mark documents the API answered 404 for by id (resource -> company -> request ids), by the
    sweeps' rule: `deleted_at`, or removed with their child rows; a table not loaded yet is skipped."""
    result = Deletions(hard=hard)
    tables = pipeline.schemas[SOURCE_NAME].tables if SOURCE_NAME in pipeline.schemas else {}
    with sql_session(pipeline, sql) as sql, sql.begin_transaction():
        for resource, companies in gone.items():
            if DELETED_AT not in tables.get(resource, {}).get("columns", {}):
                continue
            children = [name for name in tables if name.startswith(resource + "__")]
            for company, ids in companies.items():
                _apply(sql, resource, children, company, ids, hard, clock.now())
                result.marked.setdefault(company, {})[resource] = len(ids)
    return result


def _confirm(
    client: ApprovalMaxClient, company: str, doc: DocumentType, candidates: list[str], result: Deletions
) -> tuple[list[str], bool]:
    """The candidates the API answers 404 for, and whether every candidate got an answer."""
    gone: list[str] = []
    answered = True
    for request_id in candidates:
        try:
            document = client.document(company, doc, request_id)
        except ConnectorError as exc:
            log.warning(
                "%s %s %s: not checked (%s); the next run checks it", company, doc.resource, request_id, first_line(exc)
            )
            result.unanswered += 1
            answered = False
            continue
        if document is None:
            gone.append(request_id)
        else:
            result.still_served += 1  # missed by the listing: the next sweep loads it
    return gone, answered


def _apply(
    sql: SqlClientBase[Any],
    resource: str,
    children: list[str],
    company: str,
    gone: list[str],
    hard: bool,
    now: datetime,
) -> None:
    root = sql.make_qualified_table_name(resource)
    for chunk in _chunks(gone):
        marks = ", ".join(["%s"] * len(chunk))
        if hard:
            for child in children:
                sql.execute_sql(
                    f"DELETE FROM {sql.make_qualified_table_name(child)} WHERE _dlt_root_id IN "
                    f"(SELECT _dlt_id FROM {root} WHERE company_id = %s AND request_id IN ({marks}))",
                    company,
                    *chunk,
                )
            sql.execute_sql(f"DELETE FROM {root} WHERE company_id = %s AND request_id IN ({marks})", company, *chunk)
        else:
            sql.execute_sql(
                f"UPDATE {root} SET {DELETED_AT} = %s WHERE company_id = %s AND request_id IN ({marks}) "
                f"AND {DELETED_AT} IS NULL",
                now,
                company,
                *chunk,
            )


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]
