"""The `approvalmax` command: thin Typer commands, the only layer that picks exit codes."""

import signal
import sys

from approvalmax_pipeline.pipelines.cli.ctrl_c import is_the_command, stop_at_once

if is_the_command(sys.argv):  # before the modules below load: Ctrl-C while they do exits 130 too
    signal.signal(signal.SIGINT, stop_at_once)

from approvalmax_pipeline.pipelines.cli.app import app, main

__all__ = ["app", "main"]
