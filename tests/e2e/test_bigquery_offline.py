"""BigQuery without a server: configuration resolves, and a normalised load package has the
tables, merge keys, column types and load-file format a real load would send.

The loads themselves run on the bqemulator emulator in tests/warehouses (make test-warehouses);
authentication and BigQuery's own engine are not run anywhere here.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import tempfile
from pathlib import Path

import dlt
import pytest

from approvalmax_pipeline.pipelines.warehouse.factory import loader_file_format, resolve_destination
from approvalmax_pipeline.sandbox import Sandbox
from approvalmax_pipeline.sources.approvalmax import ExtractOptions, approvalmax_source
from approvalmax_pipeline.sources.approvalmax.config import ApprovalMaxCredentials, ApprovalMaxSettings
from approvalmax_pipeline.sources.approvalmax.connector import open_client
from approvalmax_pipeline.sources.approvalmax.state_layout import Positions

from ..conftest import REPO, clean_environ

BIGQUERY_ENV = {
    "DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID": "analytics-prod",
    "DESTINATION__BIGQUERY__CREDENTIALS__CLIENT_EMAIL": "loader@analytics-prod.iam.gserviceaccount.com",
    "DESTINATION__BIGQUERY__CREDENTIALS__PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
    "DESTINATION__BIGQUERY__LOCATION": "EU",
}


@pytest.fixture
def bigquery_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key, value in BIGQUERY_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))


def test_configuration_resolves_from_dlt_settings(bigquery_env: None) -> None:
    destination = resolve_destination("bigquery")
    assert loader_file_format(destination) == "parquet"
    pipeline = dlt.pipeline("bq_config", destination=destination, dataset_name="approvalmax")
    config = pipeline.destination_client().config
    assert config.credentials.project_id == "analytics-prod"
    assert config.credentials.client_email.startswith("loader@")
    assert config.location == "EU"


def test_normalised_package_has_the_merge_hints_and_types(bigquery_env: None, sandbox: Sandbox) -> None:
    tokens = Path(tempfile.mkdtemp()) / "tokens.json"
    settings = ApprovalMaxSettings(
        api_base_url=sandbox.url,
        identity_base_url=sandbox.url,
        credentials=ApprovalMaxCredentials(
            client_id=sandbox.identity.client_id,
            client_secret=sandbox.identity.client_secret,
            refresh_token=sandbox.identity.issue_refresh_token(),
        ),
        token_store=str(tokens),
    )
    pipeline = dlt.pipeline("bq_offline", destination=resolve_destination("bigquery"), dataset_name="approvalmax")
    with open_client(settings) as client:
        # a first run's positions, as the CLI reads them while restoring: nothing here reaches BigQuery
        source = approvalmax_source(client, client.companies(), ExtractOptions(positions=Positions({})))
        pipeline.extract(source, loader_file_format="parquet")
    info = pipeline.normalize()
    schema = pipeline.default_schema
    bills = schema.tables["xero_bills"]
    assert bills["write_disposition"] == "merge"
    keys = {name for name, column in bills["columns"].items() if column.get("primary_key")}
    assert keys == {"company_id", "request_id"}
    assert bills["columns"]["modified_at"]["dedup_sort"] == "desc"
    assert bills["columns"]["modified_at"]["data_type"] == "timestamp"
    assert bills["columns"]["total"]["data_type"] == "double"
    lines = schema.tables["xero_bills__line_items"]
    assert lines["parent"] == "xero_bills"
    assert lines["columns"]["quantity"]["data_type"] == "double"
    assert "_dlt_root_id" in lines["columns"]
    assert schema.tables["user_profiles"]["write_disposition"] == "merge"
    jobs = [job for package in info.load_packages for job in package.jobs["new_jobs"]]
    data_jobs = [job for job in jobs if not job.job_file_info.table_name.startswith("_dlt")]
    assert data_jobs and all(job.file_path.endswith(".parquet") for job in data_jobs)


@pytest.mark.parametrize("store", ["postgres", "file", "aws"])
def test_bigquery_loads_into_one_dataset_take_turns_through_the_token_store(
    tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    """Four runs at once hold the dataset's load lock one after another (BigQuery has no lock of its
    own and fails concurrent DML on a table); the lock lives with the shared token family."""
    token_store = request.getfixturevalue("postgres_db") if store == "postgres" else str(tmp_path / "t" / "tokens.json")
    out = tmp_path / "held.txt"
    env = {**clean_environ(), **BIGQUERY_ENV, "PYTHONPATH": str(REPO), "DLT_DATA_DIR": str(tmp_path / "dlt")}
    if store == "aws":  # a lease in the AWS store's DynamoDB lock table
        moto = request.getfixturevalue("moto")
        token_store = moto.new_store_url()
        env.update(moto.env)
    command = [sys.executable, "-m", "tests.e2e.lock_holder", token_store, str(out), "0.5"]
    holders = [subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for holder in holders:
        _, stderr = holder.communicate(timeout=120)
        assert holder.returncode == 0, stderr[-2000:]
    held = sorted(tuple(map(float, line.split())) for line in out.read_text().splitlines())
    assert len(held) == 4
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(held)), held
