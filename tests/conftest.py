"""Shared fixtures: a sandbox over real HTTP, an isolated working folder, and the real CLI."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from approvalmax_pipeline.sandbox import Sandbox, start_sandbox

from .inprocess import run_cli
from .postgres_server import PostgresServer, start_postgres

REPO = Path(__file__).resolve().parent.parent
# Environment variables a test must not inherit from the machine running it.
_LEAKY = ("SOURCES__", "DESTINATION__", "DLT_", "RUNTIME__", "APPROVALMAX_")


@dataclass
class Workspace:
    """A temp folder with its own dlt data dir, token store and DuckDB file, wired to a sandbox."""

    root: Path
    sandbox: Sandbox
    env: dict[str, str]
    postgres_dsn: str | None = None  # query this warehouse instead of the DuckDB file
    # One read-only DuckDB connection for the queries between two commands (a connect costs 26 ms,
    # a query 1 ms); released before anything that writes the file runs.
    _reader: duckdb.DuckDBPyConnection | None = field(default=None, init=False, repr=False)
    _http: httpx.Client | None = field(default=None, init=False, repr=False)

    @property
    def duckdb_file(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def token_file(self) -> Path:
        return self.root / "tokens" / "tokens.json"

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run `approvalmax ARGS` in this process (tests/inprocess.py): same exit code and output."""
        self.release()
        return run_cli(list(args), {**self.env, **(env or {})}, self.root)

    def process(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 180, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `approvalmax ARGS` as a real process, where processes matter (locks, secrets in output,
        a token on stdin)."""
        self.release()
        return subprocess.run(
            [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )

    def release(self) -> None:
        """Close the test's read-only DuckDB connection: call before starting a run in another process."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def close(self) -> None:
        self.release()
        if self._http is not None:
            self._http.close()

    def admin(self, method: str, path: str, **body: Any) -> Any:
        if self._http is None:
            self._http = httpx.Client(timeout=30)
        response = self._http.request(method, f"{self.sandbox.url}/_sandbox/{path}", json=body or None)
        response.raise_for_status()
        return response.json()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.postgres_dsn is not None:
            import psycopg2

            connection = psycopg2.connect(self.postgres_dsn)
            try:
                with connection.cursor() as cursor:
                    cursor.execute(sql)
                    return list(cursor.fetchall())
            finally:
                connection.close()
        if self._reader is None:
            self._reader = duckdb.connect(str(self.duckdb_file), read_only=True)
        return self._reader.execute(sql).fetchall()

    def on_postgres(self, dsn: str) -> Workspace:
        """The same sandbox and token store, loading into PostgreSQL."""
        env = {**self.env, "DESTINATION__POSTGRES__CREDENTIALS": dsn, "APPROVALMAX_DESTINATION": "postgres"}
        return Workspace(self.root, self.sandbox, env, postgres_dsn=dsn)


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_LEAKY)}


def workspace_env(root: Path, sandbox: Sandbox, refresh_token: str) -> dict[str, str]:
    env = clean_environ()
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "DLT_DATA_DIR": str(root / "dlt"),
            "SOURCES__APPROVALMAX__API_BASE_URL": sandbox.url,
            "SOURCES__APPROVALMAX__IDENTITY_BASE_URL": sandbox.url,
            "SOURCES__APPROVALMAX__CREDENTIALS__CLIENT_ID": sandbox.identity.client_id,
            "SOURCES__APPROVALMAX__CREDENTIALS__CLIENT_SECRET": sandbox.identity.client_secret,
            "SOURCES__APPROVALMAX__CREDENTIALS__REFRESH_TOKEN": refresh_token,
            "SOURCES__APPROVALMAX__TOKEN_STORE": str(root / "tokens" / "tokens.json"),
            "SOURCES__APPROVALMAX__MAX_ATTEMPTS": "4",
            "DESTINATION__DUCKDB__CREDENTIALS": str(root / "warehouse.duckdb"),
            "APPROVALMAX_LOG_LEVEL": "warning",
            "COLUMNS": "200",
        }
    )
    return env


@contextlib.contextmanager
def running_sandbox(companies: int, documents: int) -> Iterator[Sandbox]:
    server = start_sandbox(companies=companies, documents_per_company=documents)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def workspace_on(root: Path, server: Sandbox) -> Iterator[Workspace]:
    made = Workspace(root, server, workspace_env(root, server, server.identity.issue_refresh_token()))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """Three companies, 500 documents each."""
    with running_sandbox(3, 500) as server:
        yield server


@pytest.fixture
def workspace(tmp_path: Path, sandbox: Sandbox) -> Iterator[Workspace]:
    with workspace_on(tmp_path, sandbox) as made:
        yield made


@pytest.fixture
def small_sandbox() -> Iterator[Sandbox]:
    """Two companies, 150 documents each: enough for paging, quick to load."""
    with running_sandbox(2, 150) as server:
        yield server


@pytest.fixture
def ws(tmp_path: Path, small_sandbox: Sandbox) -> Iterator[Workspace]:
    """A workspace on the small sandbox."""
    with workspace_on(tmp_path, small_sandbox) as made:
        yield made


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole test session."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_db(postgres: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh database per test; returns its DSN."""
    import re

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50] + "_" + os.urandom(3).hex()
    return postgres.create_database(name)
