"""Airflow DAG: every company in its own task, in parallel, with dlt's PipelineTasksGroup.

Each company gets its own dlt pipeline (`approvalmax_<company>`), so parallel tasks never
overwrite each other's cursors, and all of them load the same dataset. Tasks start in a
fresh working folder and restore their state from the warehouse. The source is built
inside the task (settings, tokens, HTTP), never when the scheduler parses this file.
Workers on several machines must share one token family: `token_store` must be a
PostgreSQL URL (set APPROVALMAX_AIRFLOW_FILE_TOKEN_STORE=1 to allow a file on one machine).

Settings (environment or `.dlt/` as for the CLI, or dlt's Airflow variables):
  SOURCES__APPROVALMAX__COMPANY_IDS   companies, one task each (else one task for all)
  APPROVALMAX_DESTINATION             dlt destination (default postgres)
  APPROVALMAX_DATASET                 dataset (default approvalmax)
  APPROVALMAX_SCHEDULE                cron expression or preset (default @hourly)
  APPROVALMAX_AIRFLOW_RETRIES         task retries, 5 minutes apart (default 2)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import dlt
import pendulum
from airflow import DAG
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.helpers.airflow_helper import PipelineTasksGroup

from sources.approvalmax.config import ApprovalMaxSettings, env_name, load_settings
from sources.approvalmax.connector import Connector
from sources.approvalmax.errors import ConfigError
from sources.oauth_tokens.postgres_store import is_postgres_url

from .factory import loader_file_format, resolve_destination
from .options import select_companies

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


def company_source(company_id: str | None) -> Any:
    """Built in the task, right before the load; a failing company fails its task."""
    settings = load_settings()
    require_shared_token_store(settings)
    connector = Connector(settings)
    companies = select_companies(connector.client.companies(), [company_id] if company_id else settings.company_ids)
    return connector.source(companies, connector.extract_options(strict=True))


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
    with DAG(
        dag_id,
        schedule=schedule,
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,  # a run never overlaps the previous one
        default_args={"retries": retries, "retry_delay": timedelta(minutes=5)},
        tags=["approvalmax", "dlt"],
    ) as dag:
        tasks = PipelineTasksGroup("approvalmax", use_data_folder=False, wipe_local_data=True, use_task_logger=True)
        target = resolve_destination(destination)
        targets: list[str | None] = [*company_ids] or [None]
        for company_id in targets:
            # created after PipelineTasksGroup, so it uses the task's fresh working folder
            pipeline = dlt.pipeline(
                pipeline_name=company_pipeline_name(company_id), destination=target, dataset_name=dataset
            )
            tasks.add_run(
                pipeline,
                functools.partial(company_source, company_id),
                decompose="none",
                loader_file_format=loader_file_format(target),  # type: ignore[arg-type]
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
