"""The token layer's safety claims, with real processes over real HTTP against the sandbox."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from approvalmax_pipeline.sources.oauth_tokens.stored import AFTER_RESPONSE, AFTER_SAVE, BEFORE_REQUEST

from ..conftest import Workspace

# Makes the stored access token look due for refresh, so each of these runs must refresh.
FORCE_REFRESH = {"SOURCES__APPROVALMAX__TOKEN_REFRESH_SKEW_SECONDS": "7200"}


def crash_at(workspace: Workspace, step: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.e2e.crash_refresh", step],
        cwd=workspace.root,
        env={**workspace.env, **FORCE_REFRESH},
        capture_output=True,
        text=True,
        timeout=60,
    )


def grants(workspace: Workspace) -> dict[str, int]:
    return workspace.admin("GET", "stats")["grants"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("step", [BEFORE_REQUEST, AFTER_RESPONSE, AFTER_SAVE])
def test_kill_9_during_a_refresh_never_needs_a_new_login(workspace: Workspace, step: str) -> None:
    assert workspace.process("ping").returncode == 0  # the store holds a rotated family
    crashed = crash_at(workspace, step)
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    # the next runs must refresh (forced), and work from whatever the store held at the kill
    for _ in range(2):
        result = workspace.process("run", "--no-progress", "--resource", "companies", env=FORCE_REFRESH)
        assert result.returncode == 0, result.stderr
    expected_refreshes = {BEFORE_REQUEST: 3, AFTER_RESPONSE: 4, AFTER_SAVE: 4}[step]
    assert grants(workspace).get("refresh_token") == expected_refreshes
    assert grants(workspace).get("authorization_code", 0) == 0


def test_lost_rotation_past_the_grace_period_exits_3_with_how_to_recover(workspace: Workspace) -> None:
    assert workspace.process("ping").returncode == 0
    workspace.admin("POST", "config", refresh_grace=1.0)
    assert crash_at(workspace, AFTER_RESPONSE).returncode == -9
    identity = workspace.sandbox.identity
    identity.clock = lambda: time.time() + 1.5  # the grace has passed on the server, without waiting it out
    result = workspace.process("ping", env=FORCE_REFRESH)
    assert result.returncode == 3, result.stderr
    assert "refresh token was refused (invalid_grant)" in result.stderr
    assert "approvalmax auth login" in result.stderr


def test_two_runs_refreshing_at_once_make_exactly_one_refresh(workspace: Workspace) -> None:
    workspace.admin("POST", "config", token_latency=1.0)  # the first holds the lock a while
    command = [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", "ping"]
    runs = [
        subprocess.Popen(command, cwd=workspace.root, env=workspace.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert grants(workspace)["refresh_token"] == 1


def immutable(folder: Path, on: bool) -> bool:
    chattr = shutil.which("chattr")
    if chattr is None:
        return False
    return subprocess.run([chattr, "+i" if on else "-i", str(folder)], capture_output=True).returncode == 0


def test_failed_save_stops_the_run_and_the_next_run_recovers_within_grace(workspace: Workspace) -> None:
    assert workspace.process("ping").returncode == 0
    folder = workspace.token_file.parent
    before = workspace.token_file.read_text()
    if not immutable(folder, True):
        pytest.skip("cannot make a folder read-only here (needs root and chattr on ext4)")
    try:
        result = workspace.process("run", "--no-progress", env=FORCE_REFRESH)
    finally:
        immutable(folder, False)
    assert result.returncode == 1, result.stderr
    assert "cannot save tokens" in result.stderr and "NOT saved" in result.stderr
    assert workspace.token_file.read_text() == before
    assert not workspace.duckdb_file.exists() or workspace.query(
        "select count(*) from information_schema.tables "
        "where table_schema = 'approvalmax' and table_name = 'xero_bills'"
    ) == [(0,)]
    # the server rotated, the store kept the old token: still inside grace, so this works
    recovered = workspace.process("run", "--no-progress", "--resource", "companies", env=FORCE_REFRESH)
    assert recovered.returncode == 0, recovered.stderr
    assert json.loads(workspace.token_file.read_text())["refresh_token"] != json.loads(before)["refresh_token"]
