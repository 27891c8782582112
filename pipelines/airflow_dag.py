"""Airflow DAG: every company in its own task, in parallel, each running what `approvalmax run` runs.

Each task calls `pipelines.run.run_pipeline` for one company with its own dlt pipeline
(`approvalmax_<company>`), so parallel tasks never overwrite each other's cursors, and all of
them load the same dataset. It is the CLI's run path: the run lock, the restore from the
warehouse, the dataset lock over the load (parallel tasks take turns for their loads only:
pipelines/dataset_lock.py), the views, and the summary in the task's log. A company that fails
fails its task (strict), the others load. Settings, tokens and HTTP are built inside the task,
never when the scheduler parses this file. Workers on several machines must share one token
family: `token_store` must be a PostgreSQL URL (set APPROVALMAX_AIRFLOW_FILE_TOKEN_STORE=1 to
allow a file on one machine).

Settings (environment or `.dlt/` as for the CLI, or dlt's Airflow variables):
  SOURCES__APPROVALMAX__COMPANY_IDS   companies, one task each (else one task for all)
  APPROVALMAX_DESTINATION             dlt destination (default postgres)
  APPROVALMAX_DATASET                 dataset (default approvalmax)
  APPROVALMAX_SCHEDULE                cron expression or preset (default @hourly)
  APPROVALMAX_AIRFLOW_RETRIES         task retries, 5 minutes apart (default 2)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta

import dlt
import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, TaskGroup
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from rich.console import Console

from sources.approvalmax.config import ApprovalMaxSettings, env_name, load_settings
from sources.approvalmax.errors import ConfigError
from sources.oauth_tokens.postgres_store import is_postgres_url

from .run import RunRequest, run_pipeline
from .summary import run_summary

DAG_ID = "approvalmax"


def company_pipeline_name(company_id: str | None) -> str:
    return "approvalmax" if company_id is None else "approvalmax_" + company_id.replace("-", "")[:12].lower()


def require_shared_token_store(settings: ApprovalMaxSettings) -> None:
    if is_postgres_url(settings.token_store):
        return
    if os.environ.get("APPROVALMAX_AIRFLOW_FILE_TOKEN_STORE") == "1":
        return
    raise ConfigError(
        f"{env_name('token_store')} must be a postgresql:// URL under Airflow: workers on several machines "
        "must share one rotating token (or set APPROVALMAX_AIRFLOW_FILE_TOKEN_STORE=1 on a single machine)"
    )


def load_company(company_id: str | None, destination: str, dataset: str) -> None:
    """One task: `approvalmax run --company ID --pipeline-name approvalmax_<id>`, failing on any failure."""
    settings = load_settings()
    require_shared_token_store(settings)
    request = RunRequest(
        destination=destination,
        dataset=dataset,
        pipeline_name=company_pipeline_name(company_id),
        companies=(company_id,) if company_id else (),
        strict=True,
    )
    result = run_pipeline(settings, request)
    Console(width=120, force_terminal=False).print(run_summary(result))  # into the task's log


def configured_company_ids() -> Sequence[str]:
    try:
        value = dlt.config["sources.approvalmax.company_ids"]
    except (KeyError, ConfigFieldMissingException):
        return ()
    if isinstance(value, str):
        value = [v.strip() for v in value.strip("[]").replace('"', "").split(",") if v.strip()]
    return tuple(str(v) for v in value or ())


def build_dag(
    dag_id: str = DAG_ID,
    company_ids: Sequence[str] = (),
    destination: str = "postgres",
    dataset: str = "approvalmax",
    schedule: str = "@hourly",
    retries: int = 2,
) -> DAG:
    """One task per company (or one for all when no ids are given), no dependencies between them."""
    with (
        DAG(
            dag_id,
            schedule=schedule,
            start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
            catchup=False,
            max_active_runs=1,  # a run never overlaps the previous one
            default_args={"retries": retries, "retry_delay": timedelta(minutes=5)},
            tags=["approvalmax", "dlt"],
        ) as dag,
        TaskGroup("approvalmax"),
    ):
        targets: list[str | None] = [*company_ids] or [None]
        for company_id in targets:
            PythonOperator(
                task_id=company_pipeline_name(company_id),
                python_callable=load_company,
                op_args=[company_id, destination, dataset],
                trigger_rule="all_done",
            )
    return dag


dag = build_dag(
    company_ids=configured_company_ids(),
    destination=os.environ.get("APPROVALMAX_DESTINATION", "postgres"),
    dataset=os.environ.get("APPROVALMAX_DATASET", "approvalmax"),
    schedule=os.environ.get("APPROVALMAX_SCHEDULE", "@hourly"),
    retries=int(os.environ.get("APPROVALMAX_AIRFLOW_RETRIES", "2")),
)
