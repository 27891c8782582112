"""The Airflow DAG: companies found at run time, one mapped task each, run by a real scheduler.

Runs only where Airflow is installed (`make test-airflow`, its own virtualenv). The parallel test
starts Airflow as a deployment runs it: a PostgreSQL metadata database, the LocalExecutor, and the
scheduler, DAG processor and API server as processes of their own.
"""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from ..conftest import Workspace, running_sandbox, workspace_env, workspace_on
from ..e2e.truth import assert_equals_sandbox, export
from ..postgres_server import PostgresServer

airflow = pytest.importorskip("airflow")

COMPANIES = 8


def load_module():  # type: ignore[no-untyped-def]
    return importlib.reload(importlib.import_module("approvalmax_pipeline.pipelines.airflow_dag"))


def test_companies_then_one_mapped_load_per_company(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPROVALMAX_AIRFLOW_MAX_ACTIVE_TASKS", "5")
    dag = load_module().dag
    assert sorted(dag.task_ids) == ["companies", "load"]
    load = dag.get_task("load")
    assert load.upstream_task_ids == {"companies"}
    assert load.max_active_tis_per_dagrun == 5
    assert dag.max_active_runs == 1


def test_shards_are_stable_as_companies_are_added() -> None:
    module = load_module()
    ids = [f"{i:08d}-0000-0000-0000-000000000000" for i in range(200)]
    before = {c: t["pipeline_name"] for t in module.targets(ids, 16) for c in t["companies"]}
    after = {c: t["pipeline_name"] for t in module.targets([*ids, "new-company"], 16) for c in t["companies"]}
    assert len(set(before.values())) == 16
    assert all(after[c] == before[c] for c in ids)  # nobody moved: their cursors stay in their pipelines
    assert [t["companies"] for t in module.targets(ids[:2], 0)] == [[ids[0]], [ids[1]]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Airflow:
    """Airflow's processes against a PostgreSQL metadata database; the CLI for triggering."""

    def __init__(self, home: Path, env: dict[str, str], metadata: str) -> None:
        self.home = home
        self.env = env
        self.metadata = metadata
        self.processes: list[subprocess.Popen[bytes]] = []

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args], capture_output=True, text=True, env=self.env, timeout=300
        )

    def start(self, port: int) -> None:
        migrated = self.cli("db", "migrate")
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        for name, args in (
            ("api-server", ["api-server", "--port", str(port)]),
            ("scheduler", ["scheduler"]),
            ("dag-processor", ["dag-processor"]),
        ):
            log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            self.processes.append(
                subprocess.Popen([sys.executable, "-m", "airflow", *args], env=self.env, stdout=log, stderr=log)
            )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if self.query("select count(*) from serialized_dag where dag_id = 'approvalmax'") == [(1,)]:
                return
            time.sleep(1)
        raise AssertionError("the DAG was never parsed: " + self.logs())

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in self.home.glob("*.log"))

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        try:
            with psycopg2.connect(self.metadata) as connection, connection.cursor() as cursor:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
        except psycopg2.errors.UndefinedTable:
            return []

    def run_dag(self, run_id: str) -> str:
        triggered = self.cli("dags", "trigger", "approvalmax", "--run-id", run_id)
        assert triggered.returncode == 0, triggered.stdout[-2000:] + triggered.stderr[-2000:]
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            state = self.query("select state from dag_run where dag_id = 'approvalmax' and run_id = %s", run_id)
            if state and state[0][0] in ("success", "failed"):
                return str(state[0][0])
            time.sleep(1)
        raise AssertionError(f"DAG run {run_id} did not finish: " + self.logs())

    def load_tasks(self, run_id: str) -> list[tuple[str, datetime, datetime]]:
        return [
            (str(state), start, end)
            for state, start, end in self.query(
                "select state, start_date, end_date from task_instance where dag_id = 'approvalmax' "
                "and task_id = 'load' and run_id = %s order by map_index",
                run_id,
            )
        ]


def most_at_once(intervals: list[tuple[str, datetime, datetime]]) -> int:
    events = sorted([(start, 1) for _, start, _ in intervals] + [(end, -1) for _, _, end in intervals])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


@pytest.fixture
def deployment(tmp_path: Path, postgres: PostgresServer, postgres_db: str) -> Iterator[tuple[Workspace, Airflow]]:
    """8 companies in the sandbox; Airflow with its metadata in PostgreSQL; the warehouse in another database."""
    home = tmp_path / "airflow"
    dags = tmp_path / "dags"
    dags.mkdir(parents=True)
    home.mkdir()
    # what a deployment puts in its dags folder
    (dags / "approvalmax_dag.py").write_text(
        "from approvalmax_pipeline.pipelines.airflow_dag import dag  # noqa: F401\n"
    )
    metadata = postgres.create_database("airflow_" + os.urandom(3).hex())
    port = free_port()
    with running_sandbox(COMPANIES, 60) as server, workspace_on(tmp_path / "workspace", server) as workspace:
        workspace.admin("POST", "config", latency=0.2)  # each task takes seconds: tasks run at once overlap
        env = {
            **workspace_env(workspace.root, server, workspace.sandbox.identity.issue_refresh_token()),
            # the client secret as a deployment keeps it: in an Airflow Variable dlt reads (`dlt_secrets_toml`,
            # here from the environment's AIRFLOW_VAR_*), not in the tasks' environment
            "AIRFLOW_VAR_DLT_SECRETS_TOML": (
                f'[sources.approvalmax.credentials]\nclient_secret = "{server.identity.client_secret}"\n'
            ),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "16",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": "test-only-" + os.urandom(8).hex(),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata.replace("postgresql://", "postgresql+psycopg2://", 1),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "APPROVALMAX_SCHEDULE": "none",
            "APPROVALMAX_AIRFLOW_RETRIES": "0",
            "APPROVALMAX_AIRFLOW_MAX_ACTIVE_TASKS": str(COMPANIES),
            "SOURCES__APPROVALMAX__TOKEN_STORE": postgres_db,
            "DESTINATION__POSTGRES__CREDENTIALS": postgres_db,
        }
        del env["SOURCES__APPROVALMAX__CREDENTIALS__CLIENT_SECRET"]
        airflow_ = Airflow(home, env, metadata)
        try:
            airflow_.start(port)
            yield workspace.on_postgres(postgres_db), airflow_
        finally:
            airflow_.stop()


def test_a_scheduler_runs_every_company_at_once_and_the_warehouse_is_exact(
    deployment: tuple[Workspace, Airflow],
) -> None:
    pg, airflow_ = deployment
    for round_ in ("first", "second"):
        state = airflow_.run_dag(round_)
        tasks = airflow_.load_tasks(round_)
        assert state == "success", f"{round_}: {tasks}\n{airflow_.logs()}"
        assert [t[0] for t in tasks] == ["success"] * COMPANIES  # discovered at run time: one task each
        assert most_at_once(tasks) == COMPANIES, tasks  # all eight ran at once
        assert_equals_sandbox(pg)
        documents = sum(len(docs) for by_type in export(pg).values() for docs in by_type.values())
        assert pg.query("select count(*) from approvalmax.requests") == [(documents,)]
        pg.admin("POST", "mutate", modify=COMPANIES * 2, add=COMPANIES)
    names = {r[0] for r in pg.query("select distinct pipeline_name from approvalmax._dlt_pipeline_state")}
    assert len({n for n in names if not n.endswith("_history")}) == COMPANIES
    # every task recorded its company's resources in run_history: two runs, all loaded
    statuses = pg.query("select status, count(distinct run_id), count(*) from approvalmax.run_history group by status")
    assert statuses == [("ok", 2 * COMPANIES, 2 * COMPANIES * 9)]
    # eight tasks and the discovery, two runs, one token family in PostgreSQL: one refresh served them all
    assert pg.admin("GET", "stats")["grants"]["refresh_token"] == 1


def test_file_token_store_is_refused_under_airflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with running_sandbox(1, 5) as server, workspace_on(tmp_path, server) as workspace:
        env = {
            **workspace.env,
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "SOURCES__APPROVALMAX__TOKEN_STORE": str(tmp_path / "tokens.json"),
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        module = load_module()
        with pytest.raises(module.ConfigError, match="postgresql:// or aws-secretsmanager:// URL under Airflow"):
            module.discover_companies()
        assert workspace.admin("GET", "stats")["requests"] == 0
