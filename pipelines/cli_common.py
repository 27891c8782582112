"""What every CLI command shares: the consoles, the debug switch and the one error handler."""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console

from sources.errors import first_line

from .errors import EXIT_INTERRUPTED, OUR_ERRORS, exit_code, find_cause, interrupted

P = ParamSpec("P")
R = TypeVar("R")

out = Console()
err = Console(stderr=True)
DEBUG = {"on": False}


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn any failure into one line on stderr and its documented exit code; no traceback
    unless --debug."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            _interrupted()
        except Exception as exc:  # the one place every error ends
            if interrupted(exc):
                _interrupted()
            cause = find_cause(exc)
            if DEBUG["on"]:
                err.print("".join(traceback.format_exception(exc)), highlight=False, markup=False)
            message = first_line(cause)
            if not _is_ours(cause):
                message = f"unexpected {type(cause).__name__}: {message} (rerun with --debug for details)"
            err.print(f"error: {message}", style="red", highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(exit_code(cause)) from None

    return wrapper


def _interrupted() -> NoReturn:
    err.print(
        "interrupted: stopped cleanly; nothing after the last completed load counts, the next run continues from there",
        style="red",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(EXIT_INTERRUPTED) from None


def _is_ours(exc: BaseException) -> bool:
    return isinstance(exc, OUR_ERRORS)


def current_settings() -> Any:
    """Settings resolved now; a ConfigError reaches handle_errors like any other error."""
    from sources.approvalmax.config import load_settings

    return load_settings()
