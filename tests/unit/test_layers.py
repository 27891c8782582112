"""Imports point one way: the client, the token layer and the settings load without dlt or pyarrow."""

from __future__ import annotations

import re
import subprocess
import sys

from ..conftest import REPO


def test_the_client_and_the_token_layer_import_without_dlt_or_pyarrow() -> None:
    probe = (
        "import sys; from approvalmax_pipeline.sources import http_retry, oauth_tokens; "
        "from approvalmax_pipeline.sources.approvalmax import client, errors, settings; "
        "from approvalmax_pipeline.sources.oauth_tokens import postgres_store; "
        "print(sorted(m for m in ('dlt', 'pyarrow', 'duckdb', 'typer') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_source_package_names_load_on_first_use() -> None:
    import approvalmax_pipeline.sources.approvalmax as package

    assert package.approvalmax_source.__module__ == "approvalmax_pipeline.sources.approvalmax.source"
    assert package.ExtractOptions().arrow is True


def test_nothing_imports_the_folders_by_their_repository_names() -> None:
    """`sources.x` and `approvalmax_pipeline.sources.x` would be two modules with two sets of classes."""
    pattern = re.compile(
        r"^\s*(from|import)\s+(sources|pipelines|sandbox)\b|-m\", \"(sources|pipelines|sandbox)\b", re.M
    )
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("sources", "pipelines", "sandbox", "tests", "benchmarks", "notebooks")
        for path in (REPO / folder).rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert offenders == []
