"""The PostgreSQL token store on a real server: shared by processes, locked, crash-safe."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import psycopg2
import pytest

from approvalmax_pipeline.sources.oauth_tokens import TokenRecord, TokenStoreError
from approvalmax_pipeline.sources.oauth_tokens.postgres_store import PostgresTokenStore, redact_dsn
from approvalmax_pipeline.sources.oauth_tokens.stored import AFTER_RESPONSE

from ..conftest import Workspace


def test_round_trip_and_empty_store(postgres_db: str) -> None:
    store = PostgresTokenStore(postgres_db, key="k1")
    assert store.load() is None
    with store.lock():
        assert store.load() is None
        store.save(TokenRecord(refresh_token="rt-1", refresh_count=3))
    loaded = PostgresTokenStore(postgres_db, key="k1").load()
    assert loaded is not None and (loaded.refresh_token, loaded.refresh_count) == ("rt-1", 3)
    assert PostgresTokenStore(postgres_db, key="other").load() is None


def test_lock_excludes_another_holder_until_released(postgres_db: str) -> None:
    events: list[str] = []
    first_holds = threading.Event()

    def holder() -> None:
        with PostgresTokenStore(postgres_db, key="k").lock():
            events.append("a locked")
            first_holds.set()
            time.sleep(0.5)
            events.append("a releases")

    thread = threading.Thread(target=holder)
    thread.start()
    first_holds.wait(10)
    with PostgresTokenStore(postgres_db, key="k").lock():
        events.append("b locked")
    thread.join()
    assert events == ["a locked", "a releases", "b locked"]


def test_password_never_in_location_or_errors(postgres_db: str) -> None:
    dsn = postgres_db.replace("postgres:postgres@", "postgres:s3cret-pw@")
    assert "s3cret-pw" not in redact_dsn(dsn)
    assert (
        redact_dsn("postgresql://u@h:5/db?sslmode=require&password=s3cret-pw")
        == "postgresql://u@h:5/db?sslmode=require"
    )
    bad = PostgresTokenStore(re.sub(r":\d+/", ":9/", dsn), key="k")  # nothing listens on port 9
    with pytest.raises(TokenStoreError, match="cannot reach the token store") as info:
        bad.load()
    assert "s3cret-pw" not in str(info.value)


def pg_env(workspace: Workspace, dsn: str) -> dict[str, str]:
    return {"SOURCES__APPROVALMAX__TOKEN_STORE": dsn}


def test_workers_sharing_a_postgres_store_make_one_refresh(workspace: Workspace, postgres_db: str) -> None:
    workspace.admin("POST", "config", token_latency=1.0)
    runs = workspace.at_once(3, "ping", env=pg_env(workspace, postgres_db))
    assert [run.returncode for run in runs] == [0, 0, 0], [run.stderr for run in runs]
    assert workspace.admin("GET", "stats")["grants"]["refresh_token"] == 1
    connection = psycopg2.connect(postgres_db)
    with connection.cursor() as cursor:
        cursor.execute("select key, record->>'refresh_count' from oauth_token_store")
        rows = cursor.fetchall()
    connection.close()
    assert rows == [("approvalmax:sandbox-client", "1")]


def test_kill_9_while_holding_the_postgres_lock_leaves_it_free(workspace: Workspace, postgres_db: str) -> None:
    env = pg_env(workspace, postgres_db)
    assert workspace.cli("ping", env=env).returncode == 0
    crashed = subprocess.run(
        [sys.executable, "-m", "tests.e2e.crash_refresh", AFTER_RESPONSE],
        cwd=workspace.root,
        env={**workspace.env, **env, "SOURCES__APPROVALMAX__TOKEN_REFRESH_SKEW_SECONDS": "7200"},
        capture_output=True,
        timeout=60,
    )
    assert crashed.returncode == -9
    result = workspace.process(
        "ping", env={**env, "SOURCES__APPROVALMAX__TOKEN_REFRESH_SKEW_SECONDS": "7200"}, timeout=60
    )
    assert result.returncode == 0, result.stderr
