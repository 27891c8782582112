"""Warehouse faults: which pass and are retried within the window, which are named at once, and the
one line each ends in."""

from __future__ import annotations

import errno
import logging
from typing import Any

import duckdb
import psycopg2
import pytest
from dlt.destinations.exceptions import DatabaseTransientException
from dlt.pipeline.exceptions import PipelineStepFailed

from approvalmax_pipeline.pipelines.errors import (
    EXIT_WAREHOUSE_REFUSED,
    EXIT_WAREHOUSE_UNAVAILABLE,
    BusyError,
    WarehouseFault,
    WarehouseRefused,
    WarehouseUnavailable,
    exit_code,
)
from approvalmax_pipeline.pipelines.warehouse import faults, run_history
from approvalmax_pipeline.pipelines.warehouse.faults import classify, with_warehouse_retries
from approvalmax_pipeline.pipelines.warehouse.load_step import HistoryLog
from approvalmax_pipeline.pipelines.warehouse.target import Target

from ..fake_clock import FakeClock

TARGET = Target("postgres", "approvalmax", retry_seconds=60)


class CodedError(psycopg2.Error):
    """psycopg2's errors carry their SQLSTATE in a read-only `pgcode`: a stand-in that sets it."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self._code = code

    @property
    def pgcode(self) -> str:  # type: ignore[override]
        return self._code


class NoPending:
    has_pending_data = False
    pipeline_name = "p"


NO_PENDING = NoPending()


def as_dlt_wraps_it(cause: BaseException) -> Exception:
    """The chain a failed load step hands us: PipelineStepFailed caused by dlt's wrapper of the driver's error."""
    try:
        try:
            raise cause
        except BaseException as exc:
            raise DatabaseTransientException(exc) from exc
    except DatabaseTransientException as wrapper:
        return PipelineStepFailed(NO_PENDING, "load", "l1", wrapper, None)  # type: ignore[arg-type]


class Flaky:
    """An action that fails with `errors` in turn, then returns "done"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


DROPPED = psycopg2.OperationalError("server closed the connection unexpectedly\n\tThis probably means ...")


def test_a_dropped_connection_passes_by_itself() -> None:
    fault = classify(as_dlt_wraps_it(DROPPED))
    assert fault is not None and fault.transient and fault.reason == "the server closed the connection"


def test_a_server_restart_is_known_by_its_sqlstate() -> None:
    fault = classify(CodedError("terminating connection", "57P01"))
    assert fault is not None and fault.transient


def test_bigquerys_backend_error_passes_by_itself() -> None:
    fault = classify(RuntimeError("400 POST ...: {'reason': 'backendError'}"))
    assert fault is not None and fault.transient


def test_snowflakes_refused_login_is_permanent_and_its_unreachable_backend_passes() -> None:
    from snowflake.connector.errors import DatabaseError, OperationalError

    refused = classify(as_dlt_wraps_it(DatabaseError("Incorrect username or password was specified.", errno=390100)))
    assert refused is not None and not refused.transient and "password" in refused.fix
    key = classify(DatabaseError("JWT token is invalid.", errno=390144))
    assert key is not None and not key.transient and "RSA_PUBLIC_KEY" in key.fix
    away = classify(
        OperationalError("Could not connect to Snowflake backend after 2 attempt(s).Aborting", errno=250001)
    )
    assert away is not None and away.transient and away.reason == "Snowflake could not be reached"


def test_a_full_disk_inside_dlts_transient_wrapper_is_still_permanent() -> None:
    cause = duckdb.IOException('Could not write file "x.wal": No space left on device')
    fault = classify(as_dlt_wraps_it(cause))
    assert fault is not None and not fault.transient and fault.reason == "the disk is full"


def test_a_full_disk_is_known_by_its_errno() -> None:
    fault = classify(OSError(errno.ENOSPC, "No space left on device"))
    assert fault is not None and not fault.transient and "free space" in fault.fix


def test_a_wrong_password_is_permanent_and_says_what_to_correct() -> None:
    fault = classify(psycopg2.OperationalError('FATAL:  password authentication failed for user "postgres"'))
    assert fault is not None and not fault.transient and "password" in fault.fix


def test_a_missing_database_is_known_by_its_sqlstate() -> None:
    fault = classify(CodedError('database "nope" does not exist', "3D000"))
    assert fault is not None and not fault.transient and fault.reason == "the database does not exist"


def test_an_unknown_host_is_permanent() -> None:
    fault = classify(psycopg2.OperationalError('could not translate host name "db.example" to address'))
    assert fault is not None and not fault.transient and fault.reason == "the host name is unknown"


HELD = duckdb.IOException('IO Error: Could not set lock on file "w.duckdb": Conflicting lock is held in python (PID 7)')


def test_a_duckdb_file_held_by_another_process_is_waited_for() -> None:
    fault = classify(as_dlt_wraps_it(HELD))
    assert fault is not None and fault.transient and fault.busy


def test_a_reader_holding_the_file_briefly_is_waited_for_without_a_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    clock = FakeClock()
    assert with_warehouse_retries("loading", Flaky(HELD, HELD, HELD), TARGET, clock=clock) == "done"
    assert clock.slept == [0.25, 0.5, 1.0]
    assert caplog.records == []


def test_a_long_wait_for_the_file_is_one_line_then_its_end_another(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    clock = FakeClock()
    with_warehouse_retries("loading", Flaky(*[HELD] * 8), TARGET, clock=clock)
    assert sum(clock.slept) > faults.LONG_WAIT
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "another process has the DuckDB file open" in lines[0], lines
    assert lines[1].startswith("warehouse loading: back after 9 attempts")


def test_a_file_held_past_the_window_is_busy_exit_4_not_unavailable() -> None:
    with pytest.raises(BusyError, match=r"Could not set lock on file .*it was not touched"):
        with_warehouse_retries("loading", Flaky(*[HELD] * 1000), TARGET, clock=FakeClock())


def test_ctrl_c_is_never_a_warehouse_fault() -> None:
    assert classify(as_dlt_wraps_it(KeyboardInterrupt())) is None


def test_an_ordinary_bug_is_not_a_warehouse_fault() -> None:
    assert classify(KeyError("resource")) is None


def test_a_transient_fault_is_retried_until_the_warehouse_is_back() -> None:
    clock = FakeClock()
    action = Flaky(as_dlt_wraps_it(DROPPED), DROPPED)
    assert with_warehouse_retries("loading", action, TARGET, clock=clock) == "done"
    assert action.calls == 3
    assert clock.slept == [1.0, 2.0]


def test_the_backoff_doubles_and_stays_within_the_window() -> None:
    clock = FakeClock()
    with pytest.raises(WarehouseUnavailable):
        with_warehouse_retries("loading", Flaky(*[DROPPED] * 100), TARGET, clock=clock)
    assert clock.slept[:5] == [1.0, 2.0, 4.0, 8.0, 15.0]
    assert max(clock.slept) <= faults.MAX_DELAY
    assert sum(clock.slept) == pytest.approx(TARGET.retry_seconds)


def test_a_warehouse_that_stays_away_ends_in_one_line_with_where_why_and_what_to_do() -> None:
    with pytest.raises(WarehouseUnavailable) as raised:
        with_warehouse_retries("loading", Flaky(*[DROPPED] * 100), TARGET, clock=FakeClock())
    where, reason, fix = str(raised.value).split(" · ")
    assert where == "warehouse unavailable: postgres dataset approvalmax (loading)"
    assert reason == "the server closed the connection"
    assert "nothing was lost" in fix and "\n" not in fix
    assert exit_code(raised.value) == EXIT_WAREHOUSE_UNAVAILABLE
    assert isinstance(raised.value.__cause__, psycopg2.OperationalError)  # --debug shows it


def test_a_retry_window_of_zero_tries_once() -> None:
    action = Flaky(DROPPED)
    with pytest.raises(WarehouseUnavailable):
        with_warehouse_retries("loading", action, Target("postgres", retry_seconds=0), clock=FakeClock())
    assert action.calls == 1


def test_a_permanent_fault_is_named_at_once_without_retrying() -> None:
    clock = FakeClock()
    action = Flaky(psycopg2.OperationalError('password authentication failed for user "postgres"'))
    with pytest.raises(WarehouseRefused) as raised:
        with_warehouse_retries("restoring the pipeline's state", action, TARGET, clock=clock)
    assert action.calls == 1 and clock.slept == []
    assert str(raised.value).startswith("warehouse refused: postgres dataset approvalmax (restoring the pipeline's")
    assert exit_code(raised.value) == EXIT_WAREHOUSE_REFUSED


def test_any_other_failure_goes_through_as_it_is() -> None:
    bug = KeyError("resource")
    with pytest.raises(KeyError) as raised:
        with_warehouse_retries("loading", Flaky(bug), TARGET, clock=FakeClock())
    assert raised.value is bug


def test_ctrl_c_during_a_retried_step_stops_at_once() -> None:
    clock = FakeClock()
    action = Flaky(DROPPED, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        with_warehouse_retries("loading", action, TARGET, clock=clock)
    assert action.calls == 2


def test_hooks_run_before_each_retry_and_not_before_the_first_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    regained: list[int] = []
    monkeypatch.setattr(faults, "_BEFORE_RETRY", [lambda: regained.append(1)])
    with_warehouse_retries("loading", Flaky(DROPPED, DROPPED), TARGET, clock=FakeClock())
    assert regained == [1, 1]


def test_a_hooks_own_transient_failure_is_retried_like_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    lock = Flaky(DROPPED)  # the lock's server is not back yet on the first retry
    monkeypatch.setattr(faults, "_BEFORE_RETRY", [lock])
    assert with_warehouse_retries("loading", Flaky(DROPPED), TARGET, clock=FakeClock()) == "done"
    assert lock.calls == 2


def test_retries_are_info_lines_and_the_recovery_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=faults.__name__)
    with_warehouse_retries("loading", Flaky(DROPPED, DROPPED, DROPPED), TARGET, clock=FakeClock())
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(infos) == 3 and infos[0].startswith(
        "warehouse loading: the server closed the connection; retrying in 1 s"
    )
    assert warnings == ["warehouse loading: back after 4 attempts, 7 s"]


def written_by(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> list[bool]:
    """record_history's patience on each call; every call fails with `error`."""
    calls: list[bool] = []

    def write(target: Target, rows: list[dict[str, Any]], patient: bool = True) -> None:
        calls.append(patient)
        raise error

    monkeypatch.setattr(run_history, "write_history", write)
    return calls


UNAVAILABLE = WarehouseUnavailable("warehouse unavailable: x (writing run_history) · y · z")


def test_a_run_whose_history_cannot_be_written_fails_with_the_warehouses_line(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = written_by(monkeypatch, UNAVAILABLE)
    with pytest.raises(WarehouseFault):
        HistoryLog(TARGET).add([{"pipeline": "p"}])
    assert calls == [True]


def test_a_run_that_failed_on_the_warehouse_tries_its_history_once_and_keeps_its_own_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = written_by(monkeypatch, UNAVAILABLE)
    HistoryLog(TARGET).add([{"pipeline": "p"}], after=WarehouseUnavailable("the load's own"))
    assert calls == [False]


def test_a_run_that_failed_otherwise_still_waits_for_its_history(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = written_by(monkeypatch, UNAVAILABLE)
    HistoryLog(TARGET).add([{"pipeline": "p"}], after=KeyError("a bug"))
    assert calls == [True]


def test_the_listeners_history_is_logged_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = written_by(monkeypatch, UNAVAILABLE)
    history = HistoryLog(TARGET, every_seconds=60, clock=FakeClock())
    history.add([{"pipeline": "p", "company_id": "c", "resource": "r", "finished_at": 1}])
    history.flush(force=True)
    assert calls == [True]


def test_a_driver_error_while_writing_history_becomes_the_warehouses_line(monkeypatch: pytest.MonkeyPatch) -> None:
    written_by(monkeypatch, as_dlt_wraps_it(psycopg2.OperationalError("password authentication failed")))
    with pytest.raises(WarehouseRefused, match=r"^warehouse refused: postgres dataset approvalmax \(writing run_hi"):
        run_history.record_history(TARGET, [{"pipeline": "p"}])


def dlt_record(error: BaseException) -> logging.LogRecord:
    return logging.LogRecord(
        "dlt", logging.ERROR, __file__, 1, "Transient exception in job %s", ("j1",), (type(error), error, None)
    )


def test_dlts_own_record_of_a_warehouse_fault_is_left_out_of_the_log() -> None:
    from approvalmax_pipeline.pipelines.cli.app import OneLineRecords

    assert not OneLineRecords().filter(dlt_record(as_dlt_wraps_it(DROPPED)))


def test_dlts_other_records_keep_their_text_and_lose_their_traceback() -> None:
    from approvalmax_pipeline.pipelines.cli.app import OneLineRecords

    record = dlt_record(ValueError("bad value\nmore detail"))
    assert OneLineRecords().filter(record)
    assert (record.getMessage(), record.exc_info) == ("Transient exception in job j1: bad value", None)
    assert "Traceback" not in logging.Formatter().format(record)


def test_a_missing_database_is_known_by_the_servers_words_when_there_is_no_sqlstate() -> None:
    fault = classify(psycopg2.OperationalError('connection to server failed: FATAL:  database "nope" does not exist'))
    assert fault is not None and not fault.transient and fault.reason == "the database does not exist"


def test_a_missing_table_is_not_a_missing_database() -> None:
    assert classify(RuntimeError('relation "approvalmax._dlt_version" does not exist')) is None
