"""Airflow DAG: the companies found at run time, each loaded by its own mapped task, in parallel.

A first task (`companies`) lists the companies when the DAG runs (the configured
`company_ids`, else every company the connection can read, from `/companies`), so a newly
authorised organisation is loaded by the next run without a redeploy. Then one mapped task per
company (or per shard of companies) runs what `approvalmax run` runs, `pipelines.run.run_pipeline`,
with its own dlt pipeline, all loading one dataset: the run lock, the restore from the warehouse,
the dataset lock over the load (tasks extract side by side and take turns for their loads:
pipelines/warehouse/dataset_lock.py), the views, and the summary in the task's log. A company that fails
fails its task (strict); the others load. At most APPROVALMAX_AIRFLOW_MAX_ACTIVE_TASKS of them run at
once per DAG run. Settings, tokens and HTTP are built inside tasks, never when the scheduler
parses this file. Workers on several machines must share one token family: `token_store` must be
a PostgreSQL or aws-secretsmanager:// URL (set APPROVALMAX_AIRFLOW_FILE_TOKEN_STORE=1 to allow a file on one machine).

Settings (environment, read when the file is parsed; the connector's own settings come from the
environment or `.dlt/` as for the CLI, read by the tasks):
  APPROVALMAX_DESTINATION              dlt destination (default postgres)
  APPROVALMAX_DATASET                  dataset (default approvalmax)
  APPROVALMAX_SCHEDULE                 cron expression or preset (default @hourly); none: only
                                       when triggered
  APPROVALMAX_AIRFLOW_RETRIES          task retries, 5 minutes apart (default 2)
  APPROVALMAX_AIRFLOW_MAX_ACTIVE_TASKS company tasks at once per DAG run (default 8)
  APPROVALMAX_AIRFLOW_SHARDS           0: a task per company (default); N: N tasks, each loading
                                       the companies that hash to it (for hundreds of companies)
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task
from rich.console import Console

from approvalmax_pipeline.pipelines.cli.summary import run_summary
from approvalmax_pipeline.pipelines.run import RunRequest, run_pipeline
from approvalmax_pipeline.pipelines.warehouse.target import DATASET_NAME, PIPELINE_NAME, Target
from approvalmax_pipeline.sources.approvalmax.config import ApprovalMaxSettings, env_name, load_settings
from approvalmax_pipeline.sources.approvalmax.connector import Connector
from approvalmax_pipeline.sources.approvalmax.errors import ConfigError
from approvalmax_pipeline.sources.oauth_tokens.aws_store import is_aws_url
from approvalmax_pipeline.sources.oauth_tokens.postgres_store import is_postgres_url

DAG_ID = "approvalmax"


def company_pipeline_name(company_id: str | None) -> str:
    return PIPELINE_NAME if company_id is None else f"{PIPELINE_NAME}_" + company_id.replace("-", "")[:12].lower()


def shard_pipeline_name(shard: int, shards: int) -> str:
    return f"approvalmax_shard{shard}of{shards}"


def require_shared_token_store(settings: ApprovalMaxSettings) -> None:
    if is_postgres_url(settings.token_store) or is_aws_url(settings.token_store):
        return
    if os.environ.get("APPROVALMAX_AIRFLOW_FILE_TOKEN_STORE") == "1":
        return
    raise ConfigError(
        f"{env_name('token_store')} must be a postgresql:// or aws-secretsmanager:// URL under Airflow: workers "
        "on several machines must share one rotating token (or set APPROVALMAX_AIRFLOW_FILE_TOKEN_STORE=1 "
        "on a single machine)"
    )


def discover_companies() -> list[str]:
    """The configured `company_ids`, else every company `/companies` lists now."""
    settings = load_settings()
    require_shared_token_store(settings)
    if settings.company_ids:
        return [str(c) for c in settings.company_ids]
    with Connector(settings) as connector:
        return [company.id for company in connector.companies()]


def shard_of(company_id: str, shards: int) -> int:
    """A company's shard by a stable hash: adding a company never moves another."""
    return zlib.crc32(company_id.lower().encode()) % shards


def targets(company_ids: Sequence[str], shards: int) -> list[dict[str, object]]:
    """What each mapped task loads: one company each, or the non-empty shards."""
    if shards <= 0:
        return [{"pipeline_name": company_pipeline_name(c), "companies": [c]} for c in company_ids]
    grouped: dict[int, list[str]] = {}
    for company_id in company_ids:
        grouped.setdefault(shard_of(company_id, shards), []).append(company_id)
    return [
        {"pipeline_name": shard_pipeline_name(shard, shards), "companies": grouped[shard]} for shard in sorted(grouped)
    ]


def load_companies(pipeline_name: str, companies: Sequence[str], destination: str, dataset: str) -> None:
    """One task: `approvalmax run --company ID... --pipeline-name NAME`, failing on any failure."""
    settings = load_settings()
    require_shared_token_store(settings)
    request = RunRequest(
        Target(destination, dataset, pipeline_name),
        companies=tuple(companies),
        strict=True,
    )
    result = run_pipeline(settings, request)
    Console(width=120, force_terminal=False).print(run_summary(result))  # into the task's log


def schedule_of(value: str) -> str | None:
    return None if value.strip().lower() in ("", "none") else value


def build_dag(
    dag_id: str = DAG_ID,
    destination: str = "postgres",
    dataset: str = DATASET_NAME,
    schedule: str | None = "@hourly",
    retries: int = 2,
    max_active_tasks: int = 8,
    shards: int = 0,
) -> DAG:
    """`companies` >> `load` mapped over what it found, with no dependencies between the loads."""
    with DAG(
        dag_id,
        schedule=schedule,
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,  # a run never overlaps the previous one
        default_args={"retries": retries, "retry_delay": timedelta(minutes=5)},
        tags=["approvalmax", "dlt"],
    ) as dag:

        @task(task_id="companies")  # type: ignore[untyped-decorator]  # Airflow lives in its own venv
        def companies() -> list[dict[str, object]]:
            return targets(discover_companies(), shards)

        @task(  # type: ignore[untyped-decorator]
            task_id="load",
            max_active_tis_per_dagrun=max_active_tasks,
            map_index_template="{{ task.op_kwargs['target']['pipeline_name'] }}",
        )
        def load(target: dict[str, object]) -> None:
            companies_ = target["companies"]
            assert isinstance(companies_, list)
            load_companies(str(target["pipeline_name"]), companies_, destination, dataset)

        load.expand(target=companies())
    return dag


dag = build_dag(
    destination=os.environ.get("APPROVALMAX_DESTINATION", "postgres"),
    dataset=os.environ.get("APPROVALMAX_DATASET", DATASET_NAME),
    schedule=schedule_of(os.environ.get("APPROVALMAX_SCHEDULE", "@hourly")),
    retries=int(os.environ.get("APPROVALMAX_AIRFLOW_RETRIES", "2")),
    max_active_tasks=int(os.environ.get("APPROVALMAX_AIRFLOW_MAX_ACTIVE_TASKS", "8")),
    shards=int(os.environ.get("APPROVALMAX_AIRFLOW_SHARDS", "0")),
)
