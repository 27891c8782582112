"""ApprovalMax into DuckDB, PostgreSQL or BigQuery with dlt: the one top-level package this project installs.

`sources`, `pipelines` and `sandbox` are the repository's top-level folders, linked here so that an
install adds `approvalmax_pipeline` and nothing else to site-packages (docs/development.md, "Layout"). The source
is re-exported on first use, so importing the package loads neither dlt nor pyarrow.
"""

from __future__ import annotations

from typing import Any

__all__ = ["approvalmax_source"]


def __getattr__(name: str) -> Any:
    if name == "approvalmax_source":
        from .sources.approvalmax.connector import approvalmax_source

        return approvalmax_source
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
