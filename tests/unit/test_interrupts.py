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


@pytest.mark.parametrize("cause", [KeyboardInterrupt(), duckdb.InterruptException("INTERRUPT Error")])
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
