"""No token or secret in output, logs, dlt's working files, the warehouse or the (encrypted) token store,
at debug level."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from approvalmax_pipeline.sandbox import Sandbox, start_sandbox
from approvalmax_pipeline.sources.oauth_tokens import FileTokenStore, TokenSealing, new_key

from ..conftest import Workspace, workspace_env


@pytest.fixture
def secret_workspace(tmp_path: Path) -> Iterator[Workspace]:
    server: Sandbox = start_sandbox(companies=2, documents_per_company=300)
    server.identity.client_secret = "cs-" + secrets.token_hex(20)
    try:
        yield Workspace(tmp_path, server, workspace_env(tmp_path, server, server.identity.issue_refresh_token()))
    finally:
        server.stop()


def files_under(root: Path) -> Iterator[Path]:
    return (path for path in root.rglob("*") if path.is_file())


def test_debug_run_with_progress_leaks_no_token_or_secret(secret_workspace: Workspace) -> None:
    workspace = secret_workspace
    # one refresh in the middle of the run too: tokens live 2 s, refreshed 1 s before expiry
    workspace.admin("POST", "config", access_token_lifetime=2.0, latency=0.01)
    key = new_key()
    env = {
        "SOURCES__APPROVALMAX__TOKEN_KEY": key,
        "SOURCES__APPROVALMAX__TOKEN_REFRESH_SKEW_SECONDS": "1",
        "SOURCES__APPROVALMAX__MAX_CONCURRENCY": "2",  # long enough for a refresh mid-run
        "RUNTIME__LOG_LEVEL": "DEBUG",
    }
    result = workspace.process("--log-level", "debug", "run", "--progress", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DEBUG" in result.stderr  # debug logging really was on
    second = workspace.process("--log-level", "debug", "ping", env=env)
    assert second.returncode == 0

    stored = FileTokenStore(workspace.token_file, sealing=TokenSealing((key,))).load()
    assert stored is not None and stored.access_token is not None
    secrets_to_find = {
        "client secret": workspace.sandbox.identity.client_secret,
        "token key": key,
        "access token": stored.access_token,
        **{f"refresh token {i}": t for i, t in enumerate(workspace.sandbox.identity.refresh_tokens)},
    }
    assert len(secrets_to_find) >= 4  # seed + rotations
    assert workspace.admin("GET", "stats")["grants"]["refresh_token"] >= 2
    # the access token's signature part is what makes it secret
    secrets_to_find["access token signature"] = stored.access_token.rsplit(".", 1)[-1]

    outputs = {"stdout": result.stdout + second.stdout, "stderr": result.stderr + second.stderr}
    for where, text in outputs.items():
        for name, value in secrets_to_find.items():
            assert value not in text, f"{name} in {where}"
    scanned = 0
    for path in files_under(workspace.root):  # the token store included: it is encrypted
        data = path.read_bytes()
        scanned += 1
        for name, value in secrets_to_find.items():
            assert value.encode() not in data, f"{name} in {path}"
    assert workspace.duckdb_file.exists() and scanned > 20
    assert (workspace.root / "dlt" / "pipelines" / "approvalmax" / "state.json").exists()
