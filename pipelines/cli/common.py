"""What every CLI command shares: the consoles, the debug switch and the one error handler."""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console

from approvalmax_pipeline.pipelines.cli.ctrl_c import INTERRUPTED, exit_interrupted, stop_at_once
from approvalmax_pipeline.pipelines.errors import (
    EXIT_INTERRUPTED,
    OUR_ERRORS,
    WarehouseFault,
    exception_chain,
    exit_code,
    find_cause,
    interrupted,
)
from approvalmax_pipeline.pipelines.warehouse.faults import named
from approvalmax_pipeline.sources.errors import first_line

P = ParamSpec("P")
R = TypeVar("R")

# Off a terminal (a log file, a pipe, cron's mail) nothing is wrapped or cut: a line is as long as
# what it says, so `grep FAILED` finds the whole failure and `state` shows whole ids and cursors.
LOG_WIDTH = 4096


class CliConsole(Console):
    """Rich's layout on a terminal; plain, unwrapped lines anywhere else."""

    def __init__(self, stderr: bool = False) -> None:
        super().__init__(stderr=stderr)
        if not self.is_terminal:
            super().__init__(stderr=stderr, width=LOG_WIDTH, soft_wrap=True, no_color=True, highlight=False)

    def section(self, title: str) -> None:
        """A rule across a terminal; a plain heading line in a log."""
        if self.is_terminal:
            self.rule(title)
        else:
            self.print(f"== {title}", markup=False)


out = CliConsole()
err = CliConsole(stderr=True)
DEBUG = {"on": False}

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout (schema in pipelines/json_schemas/).")
]


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn any failure into one line on stderr and its documented exit code; no traceback
    unless --debug."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        as_json = bool(kwargs.get("json_output"))
        try:
            with ctrl_c_as_keyboard_interrupt():
                result = command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            if PRESSED["ctrl_c"]:  # its KeyboardInterrupt was swallowed (see _raise_keyboard_interrupt)
                _interrupted(command.__name__, as_json)
            raise
        except KeyboardInterrupt:
            _interrupted(command.__name__, as_json)
        except Exception as exc:  # the one place every error ends
            if interrupted(exc):
                _interrupted(command.__name__, as_json)
            cause = find_cause(exc)
            # here, not at the top: the factory imports dlt, which --version and --help never need
            from approvalmax_pipeline.pipelines.warehouse.factory import missing_destination_settings

            cause = missing_destination_settings(cause) or cause
            if not _is_ours(cause) and from_a_warehouse_driver(exc):
                cause = named(exc, fault_place(exc)) or cause
            if DEBUG["on"]:
                err.print("".join(traceback.format_exception(exc)), highlight=False, markup=False)
            message = first_line(cause)
            if not _is_ours(cause):
                message = f"unexpected {type(cause).__name__}: {message} (rerun with --debug for details)"
            # a warehouse fault's line is `warehouse unavailable|refused: <where> · <reason> · <what to do>`
            line = message if isinstance(cause, WarehouseFault) else f"error: {message}"
            err.print(line, style="red", highlight=False, markup=False, soft_wrap=True)
            _fail(command.__name__, as_json, exit_code(cause), message)
        if PRESSED["ctrl_c"]:
            _interrupted(command.__name__, as_json)
        return result

    return wrapper


PRESSED = {"ctrl_c": False}


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    """Python's own SIGINT handler, remembering the press: a KeyboardInterrupt raised while a
    weakref callback or a `__del__` runs is printed as ignored and lost, and the run would go on."""
    PRESSED["ctrl_c"] = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def ctrl_c_as_keyboard_interrupt() -> Iterator[None]:
    """Inside a command Ctrl-C raises KeyboardInterrupt, so the step under way stops cleanly and the
    handler below answers it; outside, the command's process ends at once (`stop_at_once`)."""
    armed = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is stop_at_once
    PRESSED["ctrl_c"] = False
    previous_hook = sys.unraisablehook
    if armed:
        signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
        sys.unraisablehook = _pressed_is_no_traceback(previous_hook)
    try:
        yield
    finally:
        if armed:
            signal.signal(signal.SIGINT, stop_at_once)
            sys.unraisablehook = previous_hook


def _pressed_is_no_traceback(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Python prints a KeyboardInterrupt it had to swallow ("Exception ignored in ...") with its
    traceback; the press is remembered instead, and answered by the one line."""

    def unraisable(report: Any) -> Any:
        if isinstance(report.exc_value, KeyboardInterrupt):
            return None
        return hook(report)

    return unraisable


def _fail(command: str, as_json: bool, code: int, message: str) -> NoReturn:
    if as_json:
        from approvalmax_pipeline.pipelines.cli.json_output import emit, error_document

        emit(error_document(command, code, message))
    raise typer.Exit(code) from None


def _interrupted(command: str, as_json: bool) -> NoReturn:
    message = INTERRUPTED
    err.print(message, style="red", highlight=False, soft_wrap=True)
    if signal.getsignal(signal.SIGINT) is stop_at_once:  # the command's own process
        # An interpreter that met a KeyboardInterrupt may end itself by SIGINT on its way out,
        # whatever exit code it was given (seen: -2 instead of 130): end it here, streams flushed.
        if as_json:
            from approvalmax_pipeline.pipelines.cli.json_output import emit, error_document

            emit(error_document(command, EXIT_INTERRUPTED, message))
        exit_interrupted(say=False)
    _fail(command, as_json, EXIT_INTERRUPTED, message)


def _is_ours(exc: BaseException) -> bool:
    return isinstance(exc, OUR_ERRORS)


# Exceptions from these packages may be warehouse faults; an HTTP client's "connection refused" is not.
WAREHOUSE_DRIVERS = ("dlt", "psycopg2", "duckdb", "google", "snowflake")


def fault_place(exc: BaseException) -> str:
    """Where a fault no step named happened: dlt's extract and normalise write to the working folder."""
    for link in exception_chain(exc):
        step, pipeline = getattr(link, "step", None), getattr(link, "pipeline", None)
        if step in ("extract", "normalize") and pipeline is not None:
            return f"the working folder {pipeline.working_dir} ({step})"
    return "the warehouse"


def from_a_warehouse_driver(exc: BaseException) -> bool:
    return any(type(link).__module__.split(".")[0] in WAREHOUSE_DRIVERS for link in exception_chain(exc))


def current_settings() -> Any:
    """Settings resolved now; a ConfigError reaches handle_errors like any other error."""
    from approvalmax_pipeline.sources.approvalmax.config import load_settings

    return load_settings()
