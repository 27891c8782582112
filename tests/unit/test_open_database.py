"""The dataset lock holds a DuckDB file's database open: dlt's many opens and closes inside it share it,
and the file is checkpointed once, as the lock is released."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from approvalmax_pipeline.pipelines.warehouse import faults, open_database
from approvalmax_pipeline.pipelines.warehouse.dataset_lock import dataset_lock
from approvalmax_pipeline.pipelines.warehouse.factory import make_pipeline
from approvalmax_pipeline.pipelines.warehouse.open_database import kept_open, release_all
from approvalmax_pipeline.pipelines.warehouse.target import Target


def credentials(path: Path, **settings: Any) -> DuckDbCredentials:
    return DuckDbCredentials(str(path), **settings)


def write_a_table(path: Path, name: str) -> None:
    """What a dlt step does: open the file, commit, close."""
    connection = duckdb.connect(str(path))
    connection.execute(f"CREATE TABLE {name} AS SELECT range AS n FROM range(1000)")
    connection.close()


def wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def test_closes_inside_share_the_held_database_and_the_release_checkpoints_it(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    write_a_table(path, "before")
    assert not wal(path).exists()  # alone, a close checkpoints the file and drops its log
    with kept_open(credentials(path)):
        write_a_table(path, "inside")
        write_a_table(path, "again")
        assert wal(path).exists()  # held: the closes inside did not checkpoint
        assert open_database.held()
    assert not wal(path).exists() and not open_database.held()
    with duckdb.connect(str(path), read_only=True) as reader:
        tables = {row[0] for row in reader.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert tables == {"before", "inside", "again"}


def test_a_file_it_cannot_open_is_left_to_dlt_and_a_read_only_one_is_not_held(tmp_path: Path) -> None:
    with kept_open(credentials(tmp_path / "no such folder" / "w.duckdb")):
        assert not open_database.held()
    path = tmp_path / "w.duckdb"
    write_a_table(path, "t")
    with kept_open(credentials(path, read_only=True)):
        assert not open_database.held()  # dlt opens it read-only: a held read-write one would refuse it
        with duckdb.connect(str(path), read_only=True) as reader:
            assert reader.execute("SELECT COUNT(*) FROM t").fetchone() == (1000,)


def test_it_opens_the_file_as_dlt_does_so_dlt_can_open_it_too(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    settings = credentials(path, global_config={"custom_user_agent": "ours"})
    with kept_open(settings):
        assert open_database.held()
        # dlt passes custom_user_agent to connect; DuckDB refuses a second connection with other settings
        duckdb.connect(str(path), config={"custom_user_agent": "ours"}).close()


def test_a_retried_step_lets_go_of_held_databases_first(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    assert release_all in faults._BEFORE_RETRY
    with kept_open(credentials(path)):
        write_a_table(path, "t")
        release_all()  # what a retry does first: its attempt then opens the file afresh
        assert not open_database.held() and not wal(path).exists()
    assert not open_database.held()


class FailingCheckpoint:
    """A held connection whose checkpoint fails, as on a full disk; DuckDB's close would not say so."""

    def __init__(self) -> None:
        self.closed = False

    def execute(self, sql: str) -> None:
        assert sql == "CHECKPOINT"
        raise duckdb.IOException('Could not write file "w.duckdb": No space left on device')

    def close(self) -> None:
        self.closed = True


def test_a_failed_checkpoint_is_the_steps_fault_unless_the_step_failed_already(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connections: list[FailingCheckpoint] = []

    class Pool:
        def return_conn(self, connection: FailingCheckpoint) -> None:
            connection.close()

    def borrow(credentials: Any) -> open_database._Held:
        connections.append(FailingCheckpoint())
        return open_database._Held(Pool(), connections[-1])

    monkeypatch.setattr(open_database, "_borrow", borrow)
    with pytest.raises(duckdb.IOException, match="No space left"), kept_open(credentials(tmp_path / "w.duckdb")):
        pass  # raised inside the caller's step, which names warehouse faults
    with pytest.raises(RuntimeError, match="the step's own"), kept_open(credentials(tmp_path / "w.duckdb")):
        raise RuntimeError("the step's own error")  # no checkpoint asked for: the log keeps what it committed
    assert all(connection.closed for connection in connections) and len(connections) == 2
    assert not open_database.held()


def test_the_dataset_lock_of_a_duckdb_pipeline_holds_its_file_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.duckdb"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(path))
    pipeline = make_pipeline(Target("duckdb", pipeline_name="held", pipelines_dir=str(tmp_path / "pipelines")))
    with dataset_lock(pipeline):
        assert len(open_database.held()) == 1
        write_a_table(path, "inside")
        assert wal(path).exists()  # the close inside the lock did not checkpoint
    assert not open_database.held() and not wal(path).exists()


def test_a_retry_on_another_thread_leaves_this_threads_database_held(tmp_path: Path) -> None:
    with kept_open(credentials(tmp_path / "w.duckdb")):
        other = threading.Thread(target=release_all)
        other.start()
        other.join()
        assert len(open_database.held()) == 1
