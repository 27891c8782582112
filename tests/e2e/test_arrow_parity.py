"""The Arrow path must load exactly what dlt's own row normaliser loads: tables, columns, types, values."""

from __future__ import annotations

from ..conftest import Workspace
from ..warehouse_compare import differences


def normaliser_twin(workspace: Workspace) -> Workspace:
    """The same sandbox and token store, its own dlt folder and warehouse, dlt's row normaliser."""
    root = workspace.root / "row_normaliser"
    root.mkdir()
    env = {
        **workspace.env,
        "DLT_DATA_DIR": str(root / "dlt"),
        "DESTINATION__DUCKDB__CREDENTIALS": str(root / "warehouse.duckdb"),
        "SOURCES__APPROVALMAX__ARROW_TABLES": "false",
    }
    return Workspace(root, workspace.sandbox, env)


def test_arrow_tables_equal_dlt_normaliser_on_full_and_incremental_loads(workspace: Workspace) -> None:
    twin = normaliser_twin(workspace)
    for run in ("full", "incremental"):
        for target in (workspace, twin):
            result = target.cli("run", "--no-progress")
            assert result.returncode == 0, result.stderr + result.stdout
        found = differences(str(workspace.duckdb_file), str(twin.duckdb_file))
        assert found == [], f"{run} load: " + "; ".join(found)
        # Changed documents lose a line item and gain an event; new ones arrive.
        workspace.admin("POST", "mutate", modify=15, add=10)
