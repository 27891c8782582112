"""ApprovalMax for dlt: the source (`source.py`), the API client (`client.py`) and what they share.

The source lives in `source.py`, not here, so that importing the client, the settings or the
errors loads neither dlt nor pyarrow; its names are re-exported here on first use.
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
