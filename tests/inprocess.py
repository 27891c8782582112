"""Run `approvalmax ARGS` inside the test process with Typer's CliRunner: the same commands, exit
codes and output as a real process, without a Python start-up and a dlt import per command.

The environment, the working folder and dlt's run context (which reads `.dlt/` from the working
folder) are the command's own while it runs, and restored afterwards.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

from dlt.common.configuration.container import Container
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext
from typer.testing import CliRunner

from approvalmax_pipeline.pipelines.cli import app
from approvalmax_pipeline.pipelines.cli import common as cli_common


@contextlib.contextmanager
def process_context(env: Mapping[str, str], cwd: Path) -> Iterator[None]:
    """os.environ and the working folder as a fresh process would have them; dlt reloaded to see them."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    forget_run_context()
    fresh_consoles()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        forget_run_context()


def fresh_consoles() -> None:
    """The CLI's consoles read their width (COLUMNS) when made, as in a new process."""
    cli_common.out.__init__()  # type: ignore[misc]
    cli_common.err.__init__(stderr=True)  # type: ignore[misc]


def forget_run_context() -> None:
    """dlt makes its run context (the `.dlt/` folder and its TOML files) on first use, as a new process would."""
    container = Container()
    if PluggableRunContext in container:
        del container[PluggableRunContext]


def run_cli(args: list[str], env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command's exit code, stdout and stderr, as subprocess.run would give them."""
    runner = CliRunner()
    with process_context(env, cwd):
        result = runner.invoke(app, args, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a crash of the test harness itself, not an exit code
    return subprocess.CompletedProcess(["approvalmax", *args], result.exit_code, result.stdout, result.stderr)
