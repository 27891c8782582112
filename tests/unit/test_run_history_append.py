"""run_history appends: each write one completed load, its rows' values as given, `_dlt_id` unique
and `_dlt_load_id` that load's, never null; a table an earlier pipeline made keeps its columns."""

from __future__ import annotations

import errno
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest

from approvalmax_pipeline.pipelines.errors import WarehouseRefused
from approvalmax_pipeline.pipelines.warehouse import run_history
from approvalmax_pipeline.pipelines.warehouse.run_history import (
    COLUMNS,
    FEW_HISTORY_ROWS,
    TABLE,
    history_file_format,
    write_history,
)
from approvalmax_pipeline.pipelines.warehouse.target import Target

STARTED = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def rows(run_id: str, companies: int) -> list[dict[str, Any]]:
    return [
        {
            "run_id": run_id, "load_id": "1765098000.1", "pipeline": "am", "started_at": STARTED,
            "finished_at": STARTED, "company_id": f"c{n}", "resource": "xero_bills", "status": "ok" if n else "failed",
            "rows_loaded": n, "requests": 2, "retries": 0, "error": None if n else "boom",
            "cursor_before": None, "cursor_after": STARTED if n else None, "extract_seconds": 1.5,
        }
        for n in range(companies)
    ]  # fmt: skip


def columns(database: Path) -> dict[str, tuple[str, str]]:
    with duckdb.connect(str(database)) as connection:
        found = connection.execute(
            "select column_name, data_type, is_nullable from information_schema.columns "
            "where table_schema = 'approvalmax' and table_name = ?",
            [TABLE],
        ).fetchall()
    return {name: (kind, nullable) for name, kind, nullable in found}


def test_each_write_appends_one_load_with_its_values_and_keeps_the_columns(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    target = Target(dlt.destinations.duckdb(str(database)), pipelines_dir=str(tmp_path / "dlt"))
    earlier = dlt.pipeline(
        "am_history", destination=dlt.destinations.duckdb(str(database)), dataset_name="approvalmax",
        pipelines_dir=str(tmp_path / "earlier"),
    )  # fmt: skip
    earlier.run(dlt.resource(rows("r0", 2), name=TABLE, write_disposition="append", columns=COLUMNS))  # type: ignore[call-overload]
    made_before = columns(database)

    write_history(target, rows("r1", 3))
    write_history(target, rows("r2", 1))

    assert columns(database) == made_before  # no column added, retyped or made nullable
    assert made_before["_dlt_id"][1] == "NO" and made_before["_dlt_load_id"][1] == "NO"
    with duckdb.connect(str(database)) as connection:
        got = connection.execute(
            "select h.run_id, h.company_id, h.status, h.rows_loaded, h.error, h.cursor_after, h.extract_seconds, "
            "h._dlt_load_id in (select load_id from approvalmax._dlt_loads where status = 0) "
            "from approvalmax.run_history h order by run_id, company_id"
        ).fetchall()
        ids = connection.execute("select count(distinct _dlt_id), count(*) from approvalmax.run_history").fetchone()
        per_load = connection.execute(
            "select run_id, count(distinct _dlt_load_id) from approvalmax.run_history group by run_id order by run_id"
        ).fetchall()
    assert [row[:3] for row in got] == [
        ("r0", "c0", "failed"), ("r0", "c1", "ok"),
        ("r1", "c0", "failed"), ("r1", "c1", "ok"), ("r1", "c2", "ok"),
        ("r2", "c0", "failed"),
    ]  # fmt: skip
    assert got[4][3:] == (2, None, STARTED, 1.5, True)
    assert got[5][4] == "boom" and got[5][5] is None
    assert all(row[7] for row in got)  # each row's load id is a completed load of its dataset
    assert ids == (6, 6)
    assert per_load == [("r0", 1), ("r1", 1), ("r2", 1)]


def test_few_rows_go_as_insert_and_many_as_parquet_into_the_same_table(tmp_path: Path) -> None:
    """A quiet run over a few companies writes run_history alone: INSERT spares it parquet's imports;
    a run over a thousand companies writes parquet, faster for its 9,000 rows. Same rows either way."""
    database = tmp_path / "w.duckdb"
    destination = dlt.destinations.duckdb(str(database))
    assert history_file_format(destination, FEW_HISTORY_ROWS) == "insert_values"
    assert history_file_format(destination, FEW_HISTORY_ROWS + 1) == "parquet"
    assert history_file_format(dlt.destinations.bigquery(), 1) == "parquet"  # INSERT is not its way
    target = Target(destination, pipelines_dir=str(tmp_path / "dlt"))

    write_history(target, rows("many", FEW_HISTORY_ROWS + 1))
    made = columns(database)
    write_history(target, rows("few", 3))

    assert columns(database) == made
    with duckdb.connect(str(database)) as connection:
        got = connection.execute(
            "select run_id, count(*), count(distinct _dlt_id), min(cursor_after), max(rows_loaded), "
            "sum(extract_seconds) from approvalmax.run_history group by run_id order by run_id"
        ).fetchall()
    assert got == [("few", 3, 3, STARTED, 2, 4.5), ("many", 501, 501, STARTED, 500, 751.5)]


def test_a_full_disk_in_its_own_working_folder_is_named_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run_history's pipeline writes its working folder before it talks to the warehouse: a disk that
    fills there is named as that folder, not as the warehouse."""

    def full_disk(target: Target) -> dlt.Pipeline:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_history, "make_pipeline", full_disk)
    folder = tmp_path / "dlt"
    target = Target(dlt.destinations.duckdb(str(tmp_path / "w.duckdb")), pipelines_dir=str(folder))
    with pytest.raises(WarehouseRefused) as refused:
        write_history(target, rows("full", 2))
    assert str(refused.value).startswith(f"warehouse refused: the working folder {folder / 'am_history'} ")
    assert "the disk is full" in str(refused.value)
