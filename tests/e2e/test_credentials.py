"""Checking credentials: `ping --check-refresh`, a refusal remembered by `auth status`, and the two
readings of the refresh token's 30 days."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ..conftest import Workspace

WRONG_SECRET = {"SOURCES__APPROVALMAX__CREDENTIALS__CLIENT_SECRET": "wrong"}


def grants(ws: Workspace) -> int:
    return int(ws.admin("GET", "stats")["grants"].get("refresh_token", 0))


def test_ping_check_refresh_proves_the_secret_a_cached_token_hides(ws: Workspace) -> None:
    assert ws.cli("run", "--no-progress").returncode == 0
    assert ws.cli("ping", env=WRONG_SECRET).returncode == 0  # the cached access token answers for it
    checked = ws.cli("ping", "--check-refresh", env=WRONG_SECRET)
    assert checked.returncode == 3 and "client id or secret" in checked.stderr
    before, token = grants(ws), json.loads(ws.token_file.read_text())["refresh_token"]
    ok = ws.cli("ping", "--check-refresh")
    assert ok.returncode == 0, ok.stderr
    assert "were accepted; the new token is stored" in ok.stdout
    assert grants(ws) == before + 1
    assert json.loads(ws.token_file.read_text())["refresh_token"] != token  # the rotated one, saved


def set_consent(ws: Workspace, days_ago: float) -> None:
    record = json.loads(ws.token_file.read_text())
    record["authorized_at"] = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()
    ws.token_file.write_text(json.dumps(record))


def test_auth_status_remembers_a_refusal_until_a_refresh_works(ws: Workspace) -> None:
    assert ws.cli("run", "--no-progress").returncode == 0
    assert ws.cli("auth", "status").returncode == 0
    ws.admin("POST", "revoke", mode="delete")
    assert ws.cli("ping", "--check-refresh").returncode == 3
    status = ws.cli("auth", "status")
    assert status.returncode == 3
    assert "refused this token family" in status.stderr and "approvalmax auth login" in status.stderr
    fresh = ws.admin("POST", "refresh-token")["refresh_token"]
    imported = ws.process("auth", "import", input=fresh + "\n")
    assert imported.returncode == 0, imported.stderr
    assert ws.cli("auth", "status").returncode == 0  # a working refresh cleared it


def test_auth_status_shows_both_deadlines_until_sliding_is_proven(ws: Workspace) -> None:
    assert ws.cli("run", "--no-progress").returncode == 0
    set_consent(ws, 25)
    status = ws.cli("auth", "status")
    assert status.returncode == 0
    assert "if the 30 days slide with each refresh" in status.stdout
    assert "if they count from consent" in status.stdout and "alerts use the earlier" in status.stdout
    assert "may stop working in 5.0 days" in status.stderr
    set_consent(ws, 31)  # past the absolute deadline, and the sandbox still refreshes: it slides
    assert ws.cli("ping", "--check-refresh").returncode == 0
    record = json.loads(ws.token_file.read_text())
    assert record["sliding_seen_at"] is not None
    proven = ws.cli("auth", "status")
    assert proven.returncode == 0
    assert "the 30 days do slide" in proven.stdout and "count from consent" not in proven.stdout
    assert "may stop working" not in proven.stderr
