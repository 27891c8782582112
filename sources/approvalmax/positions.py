"""The `_approvalmax_cursors` table: each company's position per resource, read at a run's start and
appended to, in the documents' own load package, for the companies whose position changed.

A row counts once its load completed (`_dlt_loads.status = 0`), and the newest such row of a key
wins: the rule dlt restores its own state by, so a killed run's half-loaded rows never move a
position. A run that moved positions then deletes its pipeline's rows that a newer row of a
completed load replaces (`prune_superseded`), so the table holds about one row per key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.schema.typing import LOADS_TABLE_NAME
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.sql_client import SqlClientBase

from ..errors import first_line
from .nullability import with_hinted_nullability
from .state_layout import POSITION_COLUMNS, POSITIONS_TABLE, Position, Positions, merge_legacy, position_from_row

log = logging.getLogger(__name__)

ARROW_TYPES = {"text": pa.string(), "bool": pa.bool_()}
LOAD_ID = "_dlt_load_id"  # dlt adds it to rows, not to Arrow tables: the read joins on it
SCHEMA = pa.schema(
    [*(pa.field(name, ARROW_TYPES[kind]) for name, kind in POSITION_COLUMNS.items()), pa.field(LOAD_ID, pa.string())]
)
READ = [name for name in POSITION_COLUMNS if name != "pipeline_name"]


def position_hints() -> dict[str, Any]:
    """Append-only: a row is never rewritten, so a position moves only with a completed load."""
    return {
        "table_name": POSITIONS_TABLE,
        "write_disposition": "append",
        "primary_key": [],
        "merge_key": [],
        "columns": {
            **{
                name: {"data_type": kind, "nullable": name not in ("pipeline_name", "resource", "company_id")}
                for name, kind in POSITION_COLUMNS.items()
            },
            LOAD_ID: {"data_type": "text", "nullable": False},
        },
    }


def position_table(rows: list[dict[str, Any]]) -> Any:
    """The rows as one Arrow table with the table's hints, for a resource to yield."""
    load_id = dlt.current.load_package_state()["load_id"]
    hints = position_hints()
    table = pa.Table.from_pylist([{**row, LOAD_ID: load_id} for row in rows], schema=SCHEMA)
    # dlt's own nullability on the fields, so it has no hint difference to warn about
    table = with_hinted_nullability(table, hints["columns"])
    return dlt.mark.with_hints(table, dlt.mark.make_hints(**hints), create_table_variant=True)


def newest_positions_sql(sql: SqlClientBase[Any]) -> str:
    """Each key's newest row among completed loads (portable SQL: DuckDB, PostgreSQL, BigQuery)."""
    table = sql.make_qualified_table_name(POSITIONS_TABLE)
    loads = sql.make_qualified_table_name(LOADS_TABLE_NAME)
    columns = ", ".join(READ)
    return (
        f"SELECT {columns} FROM (SELECT {', '.join('c.' + name for name in READ)}, ROW_NUMBER() OVER "
        "(PARTITION BY c.resource, c.company_id ORDER BY c._dlt_load_id DESC) AS newest "
        f"FROM {table} AS c JOIN {loads} AS l ON l.load_id = c._dlt_load_id "
        "WHERE c.pipeline_name = %s AND l.status = 0) AS ranked WHERE newest = 1"
    )


def prune_superseded_sql(sql: SqlClientBase[Any]) -> str:
    """Delete a pipeline's rows that a newer row of the same key, of a completed load, replaces:
    never the row a run reads (the newest completed), nor a row newer than it (a load not yet
    completed, which may complete). A correlated EXISTS, which every supported warehouse runs."""
    table = sql.make_qualified_table_name(POSITIONS_TABLE)
    loads = sql.make_qualified_table_name(LOADS_TABLE_NAME)
    return (
        f"DELETE FROM {table} WHERE pipeline_name = %s AND EXISTS (SELECT 1 FROM {table} AS n "
        f"JOIN {loads} AS l ON l.load_id = n._dlt_load_id WHERE l.status = 0 "
        f"AND n.pipeline_name = {table}.pipeline_name AND n.resource = {table}.resource "
        f"AND n.company_id = {table}.company_id AND n._dlt_load_id > {table}._dlt_load_id)"
    )


def prune_superseded(
    pipeline: dlt.Pipeline, sql: SqlClientBase[Any], *, fatal: Callable[[BaseException], bool]
) -> None:
    """`prune_superseded_sql` for the pipeline; call it under the dataset's lock. A warehouse that
    refuses the statement only keeps superseded rows a while longer (the read picks the newest
    anyway), so that is logged, never raised. `fatal` names the failures that are not the
    statement's but the warehouse's (a lost connection): those go to the caller, whose phase
    retries them, since the connection is gone for every statement after this one too."""
    try:
        sql.execute_sql(prune_superseded_sql(sql), pipeline.pipeline_name)
    except Exception as exc:  # best effort: the rows it would delete are never read
        if fatal(exc):
            raise
        log.warning("could not delete superseded rows of %s: %s", POSITIONS_TABLE, first_line(exc))


def stored_positions(pipeline: dlt.Pipeline, sql: SqlClientBase[Any]) -> dict[str, dict[str, Position]]:
    """resource -> company -> position from the table alone (empty before its first row)."""
    query = newest_positions_sql(sql)
    try:
        rows = sql.execute_sql(query, pipeline.pipeline_name) or []
    except DatabaseUndefinedRelation:
        return {}  # no load has written a position (or anything) into this dataset yet
    stored: dict[str, dict[str, Position]] = {}
    for row in rows:
        named: Mapping[str, Any] = dict(zip(READ, row, strict=True))
        stored.setdefault(str(named["resource"]), {})[str(named["company_id"])] = position_from_row(named)
    return stored


def read_positions(pipeline: dlt.Pipeline, sql: SqlClientBase[Any] | None = None) -> Positions:
    """Every position the pipeline's next run starts from: the table's, and what the previous
    version left in dlt state (state_layout.merge_legacy). `sql`: a connection the caller has open."""
    if sql is not None:
        return merge_legacy(stored_positions(pipeline, sql), pipeline.state)
    with pipeline.sql_client() as opened:
        return merge_legacy(stored_positions(pipeline, opened), pipeline.state)


class LazyPositions:
    """The positions the caller read (the CLI, as it restores the pipeline), else read once, on first
    use, from the pipeline dlt is running: a library user's `pipeline.run(approvalmax_source())`."""

    def __init__(self, read: Positions | None = None) -> None:
        self._read = read

    def get(self) -> Positions:
        if self._read is None:
            self._read = read_positions(running_pipeline())
        return self._read


def running_pipeline() -> dlt.Pipeline:
    """The pipeline running this source. `dlt.current.pipeline()` resolves dlt's whole pipeline
    configuration before it answers (about 0.1 s), which once per resource is too much."""
    from dlt.common.configuration.container import Container
    from dlt.common.pipeline import PipelineContext

    pipeline: dlt.Pipeline = Container()[PipelineContext].pipeline()  # type: ignore[assignment]
    return pipeline


def rows_as_tables(rows: list[dict[str, Any]]) -> Iterator[Any]:
    if rows:
        yield position_table(rows)
