"""Shared fixtures: a sandbox over real HTTP, an isolated working folder, and the real CLI."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from approvalmax_pipeline.sandbox import Sandbox, start_sandbox

from .inprocess import run_cli
from .moto_server import MotoServer, start_moto
from .postgres_server import PostgresServer, start_postgres

REPO = Path(__file__).resolve().parent.parent
# Environment variables a test must not inherit from the machine running it.
_LEAKY = ("SOURCES__", "DESTINATION__", "DLT_", "RUNTIME__", "LOAD__", "APPROVALMAX_")


@dataclass
class Workspace:
    """A temp folder with its own dlt data dir, token store and DuckDB file, wired to a sandbox."""

    root: Path
    sandbox: Sandbox
    env: dict[str, str]
    postgres_dsn: str | None = None  # query this warehouse instead of the DuckDB file
    # or this one's DB-API connection (a cloud warehouse's emulator: tests/emulators)
    connect: Callable[[], Any] | None = None
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

    def at_once(
        self, count: int, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> list[subprocess.CompletedProcess[str]]:
        """`approvalmax ARGS` in `count` processes started together (not one after another), each's result."""
        self.release()
        command = [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", *args]
        started = [
            subprocess.Popen(
                command,
                cwd=self.root,
                env={**self.env, **(env or {})},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]
        results = []
        for run in started:
            out, err = run.communicate(timeout=timeout)
            results.append(subprocess.CompletedProcess(command, run.returncode, out, err))
        return results

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
        if self.connect is not None:
            connection = self.connect()
            try:
                cursor = connection.cursor()
                cursor.execute(sql)
                return [tuple(row) for row in cursor.fetchall()]
            finally:
                connection.close()
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

    def on_warehouse(self, destination: str, settings: dict[str, str], connect: Callable[[], Any]) -> Workspace:
        """The same sandbox and token store, loading into `destination` configured by `settings`."""
        env = {**self.env, **settings, "APPROVALMAX_DESTINATION": destination}
        return Workspace(self.root, self.sandbox, env, connect=connect)


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


@dataclass
class Loaded:
    workspace: Workspace
    run: subprocess.CompletedProcess[str]  # the full load's exit code and output


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """The default sandbox (three companies of 500) after one full load, shared by the tests of a
    module that only read it (queries, the sandbox's GET endpoints): one load, not one per test."""
    with running_sandbox(3, 500) as server, workspace_on(tmp_path_factory.mktemp("loaded"), server) as made:
        run = made.cli("run", "--no-progress")
        assert run.returncode == 0, run.stderr + run.stdout
        yield Loaded(made, run)


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


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """One moto server (AWS Secrets Manager and DynamoDB on 127.0.0.1) for the whole test session."""
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()


# The tier of a test is its folder's: tests/unit/ is `unit`, tests/e2e/ is `e2e`. `slow` is this table's:
# scenarios whose proof takes minutes of CPU, real time passing, killed processes or Chromium. `make test`
# leaves them out, `make test-slow` (CI, .ci/run) runs them. A key is a file under tests/ (all its tests),
# or file::test (every parameter) or file::test[parameter].
TIERS = {"unit", "e2e"}
SLOW = {
    # processes killed or interrupted mid-run (make test-kill runs the first with 12 seeds, and the
    # Ctrl-C at 20 moments)
    "e2e/test_faults.py::test_kill_9_during_extract_normalise_or_load_then_a_clean_rerun",
    "e2e/test_faults.py::test_ctrl_c_in_extract_normalise_or_load_exits_130_then_a_clean_rerun",
    "e2e/test_faults.py::test_ctrl_c_at_moments_spread_over_a_whole_run_exits_130_each_time_then_a_clean_rerun",
    "e2e/test_token_safety.py::test_kill_9_during_a_refresh_never_needs_a_new_login",
    "e2e/test_token_safety.py::test_lost_rotation_past_the_grace_period_exits_3_with_how_to_recover",
    "e2e/test_token_safety.py::test_failed_save_stops_the_run_and_the_next_run_recovers_within_grace",
    # the AWS store's kill -9 after the response and its rewrite killed (make test keeps the kill after the save,
    # each waiting out a lease)
    "e2e/test_aws_token_store.py::test_kill_9_holding_the_lease_loses_nothing[after-response]",
    "e2e/test_aws_token_store.py::test_kill_9_holding_the_lease_loses_nothing[before-request]",
    "e2e/test_aws_token_store.py::test_rotate_key_killed_at_either_side_of_the_save_keeps_the_token",
    "e2e/test_listener.py::test_kill_9_after_the_answer_then_a_restart_still_loads_the_event",
    # a PostgreSQL server stopped at the views and at the history write (make test keeps the
    # stops at the start, in the load, beyond the window, and the listener's)
    "e2e/test_warehouse_faults.py::test_a_server_stopped_at_a_later_phase_is_retried_there_and_nothing_is_lost",
    # processes at once (make test-parallel runs the first with 8 at once for 2 rounds)
    "e2e/test_parallel_loads.py",
    "e2e/test_listener.py::test_the_listener_and_scheduled_runs_at_once_keep_the_warehouse_exact",
    "e2e/test_listener_replicas.py::test_two_replicas_share_the_work_and_one_killed_mid_stream_loses_nothing",
    "e2e/test_destinations.py::test_second_run_while_the_first_runs_exits_4_and_disturbs_nothing",
    "e2e/test_destinations.py::test_second_run_with_wait_runs_after_the_first",
    "e2e/test_bigquery_offline.py::test_bigquery_loads_into_one_dataset_take_turns_through_the_token_store",
    # the fault matrix under real retry delays, each fault then a clean rerun (tests/unit/test_client.py
    # has each retry rule with a fake clock; make test keeps the 429 storm and the access-token faults)
    "e2e/test_faults.py::test_client_pacing_keeps_a_rate_limited_api_free_of_429s",
    "e2e/test_faults.py::test_random_5xx",
    "e2e/test_faults.py::test_connection_resets",
    "e2e/test_faults.py::test_responses_slower_than_the_timeout",
    "e2e/test_faults.py::test_truncated_json",
    "e2e/test_faults.py::test_token_response_lost_after_rotation",
    "e2e/test_faults.py::test_company_disabled_mid_run",
    # rounds of runs, and scenarios again in a second mode (make test keeps the default mode's)
    "e2e/test_history.py::test_three_rounds_of_changes_leave_exactly_the_versions_served",
    "e2e/test_reconcile.py::test_reconcile_marks_exactly_the_deleted_documents_and_loads_silent_changes[false]",
    "e2e/test_reconcile.py::test_a_sweep_comes_by_itself_when_the_last_is_older_than_reconcile_every_hours",
    "e2e/test_reconcile.py::test_reconcile_on_postgres",
    "e2e/test_run.py::test_quiet_run_loads_no_document_but_a_late_write_still_loads",
    "e2e/test_destinations.py::test_switching_destinations_loads_each_completely",
    "e2e/test_destinations.py::test_restored_warehouse_backup_gets_the_changes_it_lost",
    "e2e/test_arrow_parity.py",
    "e2e/test_api_variants.py::test_a_refused_modified_filter_falls_back_to_whole_lists_and_stays_exact[plain]",
    "e2e/test_api_variants.py::test_an_ignored_modified_filter_is_noticed_and_the_load_stays_exact",
    "e2e/test_api_variants.py::test_a_document_type_a_company_lacks_is_reported_once_not_failed",
    "e2e/test_api_variants.py::test_date_fields_fill_timestamp_columns_in_either_form[datetime]",
    "e2e/test_run_history.py::test_history_and_freshness_after_a_run_with_a_failing_company[postgres]",
    "e2e/test_aws_token_store.py::test_a_debug_log_holds_no_token_or_client_secret[True]",
    # output over time, and the documents' own commands
    "e2e/test_operator_output.py::test_progress_in_a_log_is_a_line_every_few_seconds",
    "e2e/test_operator_output.py::test_each_failure_is_one_whole_line_in_a_log",
    "e2e/test_operator_output.py::test_state_prints_whole_ids_and_cursors_in_a_log",
    "e2e/test_operator_output.py::test_a_debug_log_has_one_format_and_no_third_party_noise_unless_asked",
    "e2e/test_readme.py",
    "e2e/test_notebooks.py::test_notebook_runs_every_cell_and_renders_its_plots",
    "e2e/test_notebooks.py::test_the_html_report_is_one_file_that_renders_its_plots_offline_in_chromium",
}


def slow_key_exists(key: str) -> bool:
    """A key names a file under tests/ and, when it has one, a test defined in it."""
    file, _, test = key.partition("::")
    path = Path(__file__).parent / file
    return path.is_file() and (not test or f"def {test.split('[')[0]}(" in path.read_text())


def pytest_configure(config: pytest.Config) -> None:
    stale = [key for key in SLOW if not slow_key_exists(key)]
    if stale:
        raise pytest.UsageError(f"tests/conftest.py SLOW names tests that do not exist: {stale}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        folder = item.path.parent.name
        if folder in TIERS:
            item.add_marker(folder)
        file = item.path.relative_to(tests).as_posix()
        name = getattr(item, "originalname", item.name)
        if file in SLOW or f"{file}::{name}" in SLOW or f"{file}::{item.name}" in SLOW:
            item.add_marker("slow")
