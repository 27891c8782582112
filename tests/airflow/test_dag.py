"""The Airflow DAG: one parallel task per company; run for real against the sandbox and PostgreSQL.

Runs only where Airflow is installed (`make test-airflow`, its own virtualenv).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import Workspace, workspace_env
from ..e2e.truth import assert_documents_equal, expected_counts, export, warehouse_counts

airflow = pytest.importorskip("airflow")


@pytest.fixture
def airflow_env(
    tmp_path: Path, workspace: Workspace, postgres_db: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """An Airflow home with a migrated metadata database, and the connector's settings."""
    home = tmp_path / "airflow"
    dags = tmp_path / "dags"
    dags.mkdir()
    # what a deployment puts in its dags folder
    (dags / "approvalmax_dag.py").write_text("from pipelines.airflow_dag import dag  # noqa: F401\n")
    env = {
        **workspace_env(tmp_path, workspace.sandbox, workspace.sandbox.identity.issue_refresh_token()),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "APPROVALMAX_AIRFLOW_RETRIES": "0",
        "SOURCES__APPROVALMAX__TOKEN_STORE": postgres_db,
        "DESTINATION__POSTGRES__CREDENTIALS": postgres_db,
        "SOURCES__APPROVALMAX__COMPANY_IDS": "["
        + ",".join(f'"{c.company_id}"' for c in workspace.sandbox.dataset.companies)
        + "]",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ)
    yield postgres_db


def load_dag():  # type: ignore[no-untyped-def]
    module = importlib.import_module("pipelines.airflow_dag")
    return importlib.reload(module).dag


def test_one_parallel_task_per_company(airflow_env: str, workspace: Workspace) -> None:
    dag = load_dag()
    ids = [c.company_id for c in workspace.sandbox.dataset.companies]
    expected = {"approvalmax.approvalmax_" + cid.replace("-", "")[:12] for cid in ids}
    assert set(dag.task_ids) == expected
    for task in dag.tasks:
        assert not task.upstream_task_ids and not task.downstream_task_ids  # all in parallel
        assert task.trigger_rule == "all_done"
    assert dag.max_active_runs == 1
    assert dag.default_args["retries"] == 0


def test_without_company_ids_one_task_loads_all(airflow_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCES__APPROVALMAX__COMPANY_IDS")
    assert load_dag().task_ids == ["approvalmax.approvalmax"]


def dags_test() -> subprocess.CompletedProcess[str]:
    """`airflow dags test`: parse the dags folder, serialise, run every task in this process."""
    return subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "approvalmax"],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=600,
    )


def test_dag_run_loads_every_company_and_shares_one_token(airflow_env: str, workspace: Workspace) -> None:
    pg = workspace.on_postgres(airflow_env)
    run = dags_test()
    assert run.returncode == 0 and "state=success" in (run.stdout + run.stderr), run.stdout[-3000:] + run.stderr[-3000:]
    truth = export(pg)
    assert warehouse_counts(pg) == expected_counts(truth)
    assert_documents_equal(pg, truth)
    # three tasks, one token family in PostgreSQL: a single refresh served them all
    assert pg.admin("GET", "stats")["grants"]["refresh_token"] == 1
    names = {r[0] for r in pg.query("select distinct pipeline_name from approvalmax._dlt_pipeline_state")}
    assert len(names) == 3
    # the CLI's run path: the analyst views are there, over every company's documents
    documents = sum(len(docs) for by_type in truth.values() for docs in by_type.values())
    assert pg.query("select count(*) from approvalmax.requests") == [(documents,)]
    # a second DAG run continues from the cursors in the warehouse
    pg.admin("POST", "mutate", modify=2, add=2)
    assert dags_test().returncode == 0
    assert_documents_equal(pg, export(pg))


def test_file_token_store_is_refused_under_airflow(
    airflow_env: str, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__APPROVALMAX__TOKEN_STORE", str(workspace.root / "tokens.json"))
    run = dags_test()
    output = run.stdout + run.stderr
    assert "state=failed" in output, output[-3000:]
    assert "must be a postgresql:// URL under Airflow" in output
    assert workspace.admin("GET", "stats")["requests"] == 0
