"""The notebooks run against the demo warehouse, every cell, and show their plots."""

from __future__ import annotations

import base64
import html
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import matplotlib.image
import numpy as np
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


def test_the_html_report_is_one_file_that_renders_its_plots_offline_in_chromium(
    demo_warehouse: Path, tmp_path: Path
) -> None:
    report, shot = tmp_path / "report.html", tmp_path / "report.png"
    env = {**clean_environ(), "PYTHONPATH": str(REPO), "APPROVALMAX_DUCKDB": str(demo_warehouse)}
    made = subprocess.run(
        [sys.executable, str(REPO / "notebooks" / "approvals.py"), "--html", str(report)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    page = report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "the report fetches something"
    assert "<script" not in page
    for heading in ("What is waiting", "How long approvals take", "Where the money goes", "bypassed"):
        assert heading in page
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium package is missing: `make test` installs it"
    # every host name resolves to nothing: a page that needs the network shows its failure
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1200,5200",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--screenshot={shot}",
        report.as_uri(),
    ]
    shown = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert shown.returncode == 0 and shot.exists(), shown.stderr[-2000:]
    pixels = (matplotlib.image.imread(shot)[:, :, :3] * 255).round().astype(int)
    assert (pixels < 250).any(axis=2).mean() > 0.05, "a blank page"
    # matplotlib's first colour (the bars, boxes' outliers) and the governance bars' red: only plots have them
    for name, colour in (("tab:blue", (31, 119, 180)), ("tab:red", (214, 39, 40))):
        near = (np.abs(pixels - np.array(colour)) <= 6).all(axis=2).sum()
        assert near > 5_000, f"{name}: {near} pixels, the plots did not render"
