"""The bench's bytes of run state a run wrote: rows it added, not the change in the table's size."""

from __future__ import annotations

from pathlib import Path

import duckdb

from benchmarks.run import POSITION_TEXT, state_bytes, written

COLUMNS = (*POSITION_TEXT, "loaded_versions", "_dlt_load_id")


def make_warehouse(path: Path) -> None:
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE SCHEMA approvalmax")
        connection.execute(
            "CREATE TABLE approvalmax._dlt_pipeline_state (version BIGINT, pipeline_name VARCHAR, state VARCHAR)"
        )
        connection.execute("INSERT INTO approvalmax._dlt_pipeline_state VALUES (1, 'p', 'abc')")
        columns = ", ".join(f"{name} VARCHAR" for name in COLUMNS)
        connection.execute(f"CREATE TABLE approvalmax._approvalmax_cursors ({columns})")
        for company in ("c1", "c2"):
            position(connection, company, "2026-12-01T00:00:00Z", "load-1")


def position(connection: duckdb.DuckDBPyConnection, company: str, cursor: str, load_id: str) -> None:
    values = {"pipeline_name": "p", "resource": "xero_bills", "company_id": company, "cursor_value": cursor}
    row = [values.get(name, load_id if name == "_dlt_load_id" else "") for name in COLUMNS]
    connection.execute(f"INSERT INTO approvalmax._approvalmax_cursors VALUES ({', '.join('?' for _ in COLUMNS)})", row)


def test_a_replaced_position_counts_as_written_though_the_table_kept_its_size(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    make_warehouse(database)
    before = state_bytes(database)
    with duckdb.connect(str(database)) as connection:
        # what a run that moved c1's cursor does: a new row, and the prune deletes the one it replaces
        position(connection, "c1", "2026-12-02T00:00:00Z", "load-2")
        replaced = "company_id = 'c1' AND _dlt_load_id = 'load-1'"
        connection.execute(f"DELETE FROM approvalmax._approvalmax_cursors WHERE {replaced}")
    after = state_bytes(database)
    new_row = len("p") + len("xero_bills") + len("c1") + len("2026-12-02T00:00:00Z") + len("load-2") + 1
    assert written(before, after) == new_row
    assert sum(after.values()) == sum(before.values())  # what the old measure, a difference, saw: nothing


def test_a_run_that_writes_nothing_writes_zero_bytes_and_a_new_state_version_counts(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    make_warehouse(database)
    before = state_bytes(database)
    assert written(before, state_bytes(database)) == 0
    with duckdb.connect(str(database)) as connection:
        connection.execute("INSERT INTO approvalmax._dlt_pipeline_state VALUES (2, 'p', 'abcdef')")
    assert written(before, state_bytes(database)) == len("abcdef")
