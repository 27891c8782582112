"""Ctrl-C is never swallowed by the steps after a load that log their own failures and go on."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from approvalmax_pipeline.pipelines.errors import interrupted
from approvalmax_pipeline.pipelines.warehouse import run_history
from approvalmax_pipeline.pipelines.warehouse.target import Target

ROWS = [{"pipeline": "p"}]
# what DuckDB raises when Ctrl-C lands while a result is read (dlt's truncate of a staging table)
QUERY_INTERRUPTED = RuntimeError("Query interrupted")


def failing(error: BaseException) -> Any:
    def write(*_args: Any, **_kwargs: Any) -> None:
        raise error

    return write


def wrapped(cause: BaseException) -> Exception:
    try:
        raise cause
    except BaseException as exc:
        try:
            raise RuntimeError("the history pipeline failed") from exc
        except RuntimeError as outer:
            return outer


@pytest.mark.parametrize(
    "cause", [KeyboardInterrupt(), duckdb.InterruptException("INTERRUPT Error"), QUERY_INTERRUPTED]
)
def test_an_interrupt_while_writing_run_history_is_raised(
    monkeypatch: pytest.MonkeyPatch, cause: BaseException
) -> None:
    error = wrapped(cause)
    assert interrupted(error)
    monkeypatch.setattr(run_history, "write_history", failing(error))
    with pytest.raises(RuntimeError):
        run_history.record_history(Target(dataset="d"), ROWS)


def test_any_other_failure_writing_run_history_is_logged_and_the_run_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    error = wrapped(duckdb.IOException("disk full"))
    assert not interrupted(error) and not isinstance(error, PipelineStepFailed)
    monkeypatch.setattr(run_history, "write_history", failing(error))
    run_history.record_history(Target(dataset="d"), ROWS)


@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize(
    "cause", [KeyboardInterrupt(), duckdb.InterruptException("INTERRUPT Error"), QUERY_INTERRUPTED]
)
def test_ctrl_c_in_any_command_exits_130_with_one_line(
    capsys: pytest.CaptureFixture[str], cause: BaseException, as_json: bool
) -> None:
    """What tests/e2e/test_faults.py's Ctrl-C tests (slow tier) see from outside, here with the
    interrupt raised bare or wrapped as dlt wraps a failed step."""
    import json

    import typer

    from approvalmax_pipeline.pipelines.cli import common as cli_common

    @cli_common.handle_errors
    def run(json_output: bool = False) -> None:
        if isinstance(cause, KeyboardInterrupt):
            raise cause
        raise wrapped(cause)

    with pytest.raises(typer.Exit) as exit_info:
        run(json_output=as_json)
    assert exit_info.value.exit_code == 130
    captured = capsys.readouterr()
    assert captured.err.startswith("interrupted: stopped cleanly") and "Traceback" not in captured.err
    if as_json:
        document = json.loads(captured.out)
        assert document["exit_code"] == 130 and document["command"] == "run"
    else:
        assert captured.out == ""


def test_a_runtime_error_that_only_mentions_an_interruption_is_not_one() -> None:
    assert not interrupted(RuntimeError("the job failed: Query interrupted earlier was retried"))
