"""Pipelines: the run path, and the CLI, warehouse, webhook and operations layers around it."""
