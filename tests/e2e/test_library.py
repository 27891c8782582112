"""The source as a library, the way dlt's verified sources are used: a user's own script, in a
folder of its own outside the repository, with its settings in that folder's `.dlt/`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..conftest import Workspace, clean_environ
from .truth import assert_documents_equal, export

SCRIPT = """
import dlt
from sources.approvalmax import approvalmax_source

warehouse = dlt.destinations.duckdb("warehouse.duckdb")
pipeline = dlt.pipeline("my_approvalmax", destination=warehouse, dataset_name="approvalmax")
info = pipeline.run(approvalmax_source(), loader_file_format="parquet")
print("loaded", len(info.loads_ids))
"""


def test_a_users_script_outside_the_repo_runs_the_source_from_dlt_config(ws: Workspace, tmp_path: Path) -> None:
    project = tmp_path / "my_project"
    (project / ".dlt").mkdir(parents=True)
    (project / "load.py").write_text(SCRIPT)
    sandbox = ws.sandbox
    (project / ".dlt" / "config.toml").write_text(
        f'[sources.approvalmax]\napi_base_url = "{sandbox.url}"\nidentity_base_url = "{sandbox.url}"\n'
        'token_store = "tokens/approvalmax.json"\n'
    )
    (project / ".dlt" / "secrets.toml").write_text(
        "[sources.approvalmax.credentials]\n"
        f'client_id = "{sandbox.identity.client_id}"\nclient_secret = "{sandbox.identity.client_secret}"\n'
        f'refresh_token = "{sandbox.identity.issue_refresh_token()}"\n'
    )
    env = {**clean_environ(), "DLT_DATA_DIR": str(project / "dlt")}
    env.pop("PYTHONPATH", None)  # the installed package, not the repository
    mine = Workspace(project, sandbox, env)
    for run in ("full", "incremental"):
        if run == "incremental":
            ws.admin("POST", "mutate", modify=3, add=2)
        result = subprocess.run(
            [sys.executable, "load.py"], cwd=project, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"{run}: {result.stderr[-3000:]}"
        assert "loaded 1" in result.stdout
        assert_documents_equal(mine, export(mine))
        mine.release()
    assert (project / "tokens" / "approvalmax.json").stat().st_mode & 0o777 == 0o600
