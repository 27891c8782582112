"""ApprovalMax for dlt: the sources (`source.py`), built by the one composition root (`connector.py`,
which also holds the library's `approvalmax_source()`), the API client (`client.py`) and what they share.

Importing this package loads neither dlt nor pyarrow: its names are re-exported here on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "approvalmax_source": ".connector",
    "Connector": ".connector",
    "Company": ".companies",
    "documents_resource": ".source",
    "ExtractOptions": ".extract_options",
    "RunReport": ".report",
    "CompanyFailure": ".report",
    "Window": ".cursors",
    "ApprovalMaxClient": ".client",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
