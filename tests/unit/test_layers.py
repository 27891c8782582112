"""Imports point one way: the client, the token layer and the settings load without dlt or pyarrow."""

from __future__ import annotations

import subprocess
import sys

from ..conftest import REPO


def test_the_client_and_the_token_layer_import_without_dlt_or_pyarrow() -> None:
    probe = (
        "import sys; import sources.approvalmax.client, sources.approvalmax.settings, sources.approvalmax.errors, "
        "sources.oauth_tokens, sources.oauth_tokens.postgres_store, sources.http_retry; "
        "print(sorted(m for m in ('dlt', 'pyarrow', 'duckdb', 'typer') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_source_package_names_load_on_first_use() -> None:
    import sources.approvalmax as package

    assert package.approvalmax_source.__module__ == "sources.approvalmax.source"
    assert package.ExtractOptions().arrow is True
