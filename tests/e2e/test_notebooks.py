"""The notebooks run against the demo warehouse, every cell, and show their plots."""

from __future__ import annotations

import base64
import html
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from ..conftest import REPO, clean_environ

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))


@pytest.fixture(scope="module")
def demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "approvalmax_pipeline.pipelines.cli",
            "demo",
            "--duckdb-file",
            "demo.duckdb",
            "--workdir",
            "work",
        ],
        cwd=folder,
        env={**clean_environ(), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return folder / "demo.duckdb"


def test_there_are_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == ["approvals.py"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_every_cell_and_renders_its_plots(notebook: Path, demo_warehouse: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.html"
    env = {**clean_environ(), "PYTHONPATH": str(REPO), "APPROVALMAX_DUCKDB": str(demo_warehouse)}
    result = subprocess.run(
        [sys.executable, "-m", "marimo", "export", "html", str(notebook), "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    page = html.unescape(urllib.parse.unquote(out.read_text()))
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 5
    assert all(base64.b64decode(image)[:4] == b"\x89PNG" for image in images)
    for heading in ("What is waiting", "How long approvals take", "Where the money goes", "bypassed"):
        assert heading in page
    assert "near_duplicate" in page and "self_approval" in page
    # and as a plain script, as a scheduler would run it
    script = subprocess.run([sys.executable, str(notebook)], env=env, capture_output=True, text=True, timeout=300)
    assert script.returncode == 0, script.stderr
