"""The one root of every error this project raises on purpose: the CLI maps its subclasses to exit codes."""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of the ApprovalMax errors and of the token layer's errors."""


def first_line(exc: BaseException) -> str:
    """An exception's first line of text, or its type's name when it has none: for one-line messages."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
