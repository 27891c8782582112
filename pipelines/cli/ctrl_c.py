"""Ctrl-C in the command's own process: one line and exit 130 whenever it lands.

Inside a command (`common.handle_errors`) Ctrl-C raises KeyboardInterrupt, so the step under way
stops cleanly and the handler answers it. Outside (the modules loading, Typer reading the options,
the exit) nothing is under way, and `stop_at_once` ends the process.
"""

from __future__ import annotations

import contextlib
import os
import sys
from types import FrameType

INTERRUPTED = (
    "interrupted: stopped cleanly; nothing after the last completed load counts, the next run continues from there"
)


def stop_at_once(signum: int, frame: FrameType | None) -> None:
    """SIGINT outside a command's own handling: one line and exit 130 at once. Python's own handling
    there would print a traceback, or end the process by SIGINT."""
    exit_interrupted(say=True)


def exit_interrupted(say: bool) -> None:
    """End the process with 130 now, streams flushed; the line first unless it was said. (An
    interpreter that met a KeyboardInterrupt may end itself by SIGINT on its way out, whatever exit
    code it was given: seen as -2 instead of 130.)"""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if say:
        os.write(2, (INTERRUPTED + "\n").encode())
    os._exit(130)


def is_the_command(argv: list[str]) -> bool:
    """The console script, or `python -m` (whose argv[0] is "-m" while it imports): a library or a
    test importing the CLI keeps its own Ctrl-C."""
    return argv[:1] == ["-m"] or os.path.basename(argv[0] if argv else "") == "approvalmax"
