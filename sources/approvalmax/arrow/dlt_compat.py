"""One shim for dlt 1.31 (pinned), so Arrow tables can go straight into nested tables.

dlt writes, normalises and merges Arrow tables into nested tables correctly (root_key
deletes included), but its extract metrics then look up `table["resource"]`, which
nested tables never have (dlt-hub/dlt#2106 keeps that key off them on purpose), and
the run fails with `KeyError: 'resource'`. While metrics are computed, each nested table
borrows its root table's resource name; the schema is left as it was afterwards.
tests/unit/test_dlt_compat.py shows the failure without it, so a dlt upgrade that fixes it is noticed;
tests/e2e/test_arrow_parity.py fails if an upgrade changes what it relies on.
"""

from __future__ import annotations

from typing import Any

from dlt.common.schema.typing import TTableSchema
from dlt.common.schema.utils import get_root_table, is_nested_table
from dlt.extract.extract import Extract

_PATCHED = "_approvalmax_nested_metrics"


def allow_arrow_in_nested_tables() -> None:
    """Idempotent; called when the source module is imported."""
    original = Extract._compute_metrics
    if getattr(original, _PATCHED, False):
        return

    def compute_metrics(self: Extract, load_id: str, source: Any) -> Any:
        tables: dict[str, TTableSchema] = source.schema.tables
        borrowed = [name for name, table in tables.items() if is_nested_table(table) and "resource" not in table]
        for name in borrowed:
            tables[name]["resource"] = get_root_table(tables, name).get("resource", name)
        try:
            return original(self, load_id, source)
        finally:
            for name in borrowed:
                tables[name].pop("resource", None)

    setattr(compute_metrics, _PATCHED, True)
    compute_metrics.__wrapped__ = original  # type: ignore[attr-defined]
    Extract._compute_metrics = compute_metrics  # type: ignore[method-assign]
