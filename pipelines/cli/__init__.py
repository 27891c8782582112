"""The `approvalmax` command: thin Typer commands, the only layer that picks exit codes."""

from approvalmax_pipeline.pipelines.cli.app import app, main

__all__ = ["app", "main"]
