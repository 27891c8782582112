"""Tokens encrypted at rest, over the real CLI against the sandbox: keys made, rotated, missing or
wrong; a plain-text store migrated; a rewrite killed at every step; nothing readable in the file,
the table, a pg_dump or the server's log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from approvalmax_pipeline.sources.oauth_tokens import FileTokenStore, TokenSealing, new_key
from approvalmax_pipeline.sources.oauth_tokens.postgres_store import PostgresTokenStore

from ..conftest import Workspace, clean_environ
from ..inprocess import run_cli
from ..postgres_server import PostgresServer
from .test_exit_codes import assert_one_line

OLD, NEW = new_key(), new_key()
KEY = "SOURCES__APPROVALMAX__TOKEN_KEY"
# Makes the stored access token look due for refresh, so a command must refresh with the stored token.
FORCE_REFRESH = {"SOURCES__APPROVALMAX__TOKEN_REFRESH_SKEW_SECONDS": "7200"}


def keys(*given: str) -> dict[str, str]:
    return {KEY: ",".join(given)}


def ping(workspace: Workspace, env: dict[str, str], *, refresh: bool = False) -> None:
    result = workspace.cli("ping", env={**env, **(FORCE_REFRESH if refresh else {})})
    assert result.returncode == 0, result.stderr


def issued_tokens(workspace: Workspace) -> list[str]:
    """Every refresh token the sandbox issued (the seed and each rotation)."""
    return list(workspace.sandbox.identity.refresh_tokens)


def assert_no_token_in(text: str | bytes, tokens: list[str]) -> None:
    data = text.encode() if isinstance(text, str) else text
    assert tokens and all(token.encode() not in data for token in tokens)


def refresh_grants(workspace: Workspace) -> dict[str, int]:
    """The sandbox's grants by type: a forced refresh from the stored token shows up as a second refresh_token."""
    return workspace.admin("GET", "stats")["grants"]  # type: ignore[no-any-return]


def test_new_key_prints_a_fresh_key_on_its_last_line(tmp_path: Path) -> None:
    first = run_cli(["auth", "new-key"], clean_environ(), tmp_path)
    second = run_cli(["auth", "new-key"], clean_environ(), tmp_path)
    assert first.returncode == 0, first.stderr
    key = first.stdout.splitlines()[-1]
    assert TokenSealing((key,)).encrypted and key != second.stdout.splitlines()[-1]
    assert "rotate-key" in first.stderr


def test_a_plain_store_is_rewritten_encrypted_on_the_first_run_with_a_key(ws: Workspace) -> None:
    ping(ws, {})
    assert json.loads(ws.token_file.read_text())["refresh_token"] in issued_tokens(ws)  # plain, as before
    ping(ws, keys(NEW))  # the stored access token is still good: no refresh, no save, only the rewrite
    assert refresh_grants(ws)["refresh_token"] == 1
    assert_no_token_in(ws.token_file.read_bytes(), issued_tokens(ws))
    ping(ws, keys(NEW), refresh=True)
    assert refresh_grants(ws)["refresh_token"] >= 2  # the seed's, then the stored token's


def test_rotate_key_re_encrypts_so_the_old_key_can_go(ws: Workspace) -> None:
    ping(ws, keys(OLD))
    rotated = ws.cli("auth", "rotate-key", env=keys(NEW, OLD))
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted under the newest of 2 key(s)" in rotated.stdout
    ping(ws, keys(NEW), refresh=True)
    assert refresh_grants(ws)["refresh_token"] >= 2
    status = ws.cli("auth", "status", env=keys(NEW))
    assert status.returncode == 0 and "encryption: Fernet, under the newest of 1 key(s)" in status.stdout


def test_rotate_key_without_a_key_is_one_line_exit_2(ws: Workspace) -> None:
    assert_one_line(ws.cli("auth", "rotate-key"), 2, f"{KEY} is not set", "approvalmax auth new-key")


@pytest.mark.parametrize(
    ("given", "fragment"),
    [((), "is encrypted and no key is configured"), ((OLD,), "none of the 1 key(s)"), (("short",), "key 1 of 1")],
    ids=["missing", "wrong", "malformed"],
)
def test_a_missing_wrong_or_malformed_key_is_one_line_exit_2_and_the_store_is_untouched(
    ws: Workspace, given: tuple[str, ...], fragment: str
) -> None:
    ping(ws, keys(NEW))
    before = ws.token_file.read_bytes()
    result = ws.cli("run", "--no-progress", env=keys(*given))
    assert_one_line(result, 2, fragment)
    assert ws.token_file.read_bytes() == before
    assert all(key not in result.stderr + result.stdout for key in (NEW, OLD, *given))


def crash_rewrite(workspace: Workspace, env: dict[str, str], step: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.e2e.crash_rewrite", step],
        cwd=workspace.root,
        env={**workspace.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


# What the store held before, and the keys the rewrite runs with: a plain store migrated, a key rotated.
CHANGES = {"migrate": ((), (NEW,)), "rotate": ((OLD,), (NEW, OLD))}


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("step", ["before-save", "before-replace", "after-save"])
def test_a_file_store_rewrite_killed_at_any_step_keeps_the_token(ws: Workspace, change: str, step: str) -> None:
    before, during = CHANGES[change]
    ping(ws, keys(*before))
    crashed = crash_rewrite(ws, keys(*during), step)
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    ping(ws, keys(*during), refresh=True)  # the stored token still refreshes
    assert refresh_grants(ws)["refresh_token"] >= 2
    assert FileTokenStore(ws.token_file, sealing=TokenSealing((NEW,))).load() is not None  # now under NEW alone
    assert_no_token_in(ws.token_file.read_bytes(), issued_tokens(ws))


def table_text(dsn: str) -> str:
    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute("select coalesce(string_agg(key || ' ' || record::text, ' '), '') from oauth_token_store")
            return str(cursor.fetchone()[0])
    finally:
        connection.close()


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("step", ["before-save", "after-save"])
def test_a_postgres_store_rewrite_killed_at_any_step_keeps_the_token(
    ws: Workspace, postgres_db: str, change: str, step: str
) -> None:
    before, during = CHANGES[change]
    store = {"SOURCES__APPROVALMAX__TOKEN_STORE": postgres_db}
    ping(ws, {**store, **keys(*before)})
    crashed = crash_rewrite(ws, {**store, **keys(*during)}, step)
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    ping(ws, {**store, **keys(*during)}, refresh=True)
    assert refresh_grants(ws)["refresh_token"] >= 2
    assert PostgresTokenStore(postgres_db, key="approvalmax:sandbox-client", sealing=TokenSealing((NEW,))).load()
    assert_no_token_in(table_text(postgres_db), issued_tokens(ws))


def test_no_token_in_the_postgres_table_a_pg_dump_or_the_server_log(
    ws: Workspace, postgres: PostgresServer, postgres_db: str
) -> None:
    env = {"SOURCES__APPROVALMAX__TOKEN_STORE": postgres_db, **keys(NEW)}
    ping(ws, env)
    ping(ws, env, refresh=True)
    record = PostgresTokenStore(postgres_db, key="approvalmax:sandbox-client", sealing=TokenSealing((NEW,))).load()
    assert record is not None and record.access_token and record.previous_refresh_token
    secrets = [*issued_tokens(ws), record.access_token.rsplit(".", 1)[-1]]  # a JWT's secret part is its signature
    assert len(secrets) >= 3
    assert "approvalmax:sandbox-client" in table_text(postgres_db)  # the row is there, and readable
    assert_no_token_in(table_text(postgres_db), secrets)
    dump = subprocess.run(
        [str(postgres.bin / "pg_dump"), "--data-only", "--table", "oauth_token_store", postgres_db],
        capture_output=True,
        check=True,
    ).stdout
    assert b"approvalmax:sandbox-client" in dump
    assert_no_token_in(dump, secrets)
    assert_no_token_in((postgres.folder / "log").read_bytes(), secrets)
