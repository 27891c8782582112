"""The source as a library, the way dlt's verified sources are used: the package built as a wheel and
installed apart from the repository, and a user's own script in a folder of its own, with its settings
in that folder's `.dlt/`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ..conftest import REPO, Workspace, clean_environ
from .truth import assert_documents_equal, export

# what the wheel is built from: the package's folder links to these
BUILT_FROM = ("pyproject.toml", "README.md", "approvalmax_pipeline", "sources", "pipelines", "sandbox")

SCRIPT = """
import importlib.util
import dlt
import approvalmax_pipeline
from approvalmax_pipeline import approvalmax_source

print("package", approvalmax_pipeline.__file__)
print("others", [name for name in ("sources", "pipelines", "sandbox") if importlib.util.find_spec(name)])

warehouse = dlt.destinations.duckdb("warehouse.duckdb")
pipeline = dlt.pipeline("my_approvalmax", destination=warehouse, dataset_name="approvalmax")
info = pipeline.run(approvalmax_source(), loader_file_format="parquet")
print("loaded", len(info.loads_ids))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel` builds from a copy of the repository (so no build/ folder is left in it)."""
    copy = tmp_path_factory.mktemp("project")
    for name in BUILT_FROM:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, copy / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, copy / name)
    dist = tmp_path_factory.mktemp("dist")
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist)]
    subprocess.run([*build, str(copy)], check=True, capture_output=True, timeout=300)
    (built,) = dist.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed into a folder of its own (its dependencies are the test environment's)."""
    target = tmp_path_factory.mktemp("site")
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    return target


def test_the_wheel_adds_one_top_level_package_with_the_schemas_and_the_command(wheel: Path, installed: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"approvalmax_pipeline"}
    assert "approvalmax = approvalmax_pipeline.pipelines.cli:main" in entry_points
    assert {p.name for p in installed.iterdir() if not p.name.endswith(".dist-info")} == {"approvalmax_pipeline", "bin"}
    schemas = installed / "approvalmax_pipeline" / "pipelines" / "json_schemas"
    assert sorted(p.name for p in schemas.glob("*.json")) == sorted(
        p.name for p in (REPO / "pipelines" / "json_schemas").glob("*.json")
    )
    json.loads((schemas / "run.schema.json").read_text())
    assert not (installed / "approvalmax_pipeline" / "sources").is_symlink()


def test_a_users_script_outside_the_repo_runs_the_source_from_dlt_config(
    ws: Workspace, tmp_path: Path, installed: Path
) -> None:
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
    env["PYTHONPATH"] = str(installed)  # the installed wheel, not the repository
    mine = Workspace(project, sandbox, env)
    for run in ("full", "incremental"):
        if run == "incremental":
            ws.admin("POST", "mutate", modify=3, add=2)
        result = subprocess.run(
            [sys.executable, "load.py"], cwd=project, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"{run}: {result.stderr[-3000:]}"
        assert "loaded 1" in result.stdout
        assert f"package {installed / 'approvalmax_pipeline' / '__init__.py'}" in result.stdout
        assert "others []" in result.stdout
        assert_documents_equal(mine, export(mine))
        mine.release()
    assert (project / "tokens" / "approvalmax.json").stat().st_mode & 0o777 == 0o600
