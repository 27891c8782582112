"""The DuckDB memory cap is a default: a configured global_config wins."""

import json
import os
from pathlib import Path

import pytest

from approvalmax_pipeline.pipelines.warehouse.factory import (
    DUCKDB_MEMORY_LIMIT,
    bound_duckdb_memory,
    empty_duckdb_staging,
)

ENV = "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG"


def test_duckdb_memory_is_capped_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "")
    monkeypatch.delenv(ENV)  # recorded, so the value set below is removed after the test
    bound_duckdb_memory()
    assert json.loads(os.environ[ENV]) == {"memory_limit": DUCKDB_MEMORY_LIMIT}


def test_configured_duckdb_settings_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, '{"memory_limit": "4GB", "threads": 2}')
    bound_duckdb_memory()
    assert json.loads(os.environ[ENV]) == {"memory_limit": "4GB", "threads": 2}


TRUNCATE = "LOAD__TRUNCATE_STAGING_DATASET"
SCOPED = "APPROVALMAX__LOAD__TRUNCATE_STAGING_DATASET"  # the pipeline named approvalmax's


@pytest.fixture
def no_truncate_setting(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (TRUNCATE, SCOPED, "OTHER__LOAD__TRUNCATE_STAGING_DATASET"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)  # recorded, so what the code sets is removed after the test
    return monkeypatch


def test_duckdb_staging_is_emptied_after_a_load_by_default(no_truncate_setting: pytest.MonkeyPatch) -> None:
    empty_duckdb_staging("approvalmax")
    assert os.environ[SCOPED] == "true"
    # only for that pipeline name: another (another destination, the same process) keeps dlt's default
    assert TRUNCATE not in os.environ and "OTHER__LOAD__TRUNCATE_STAGING_DATASET" not in os.environ


@pytest.mark.parametrize("configured", [TRUNCATE, SCOPED])
def test_a_configured_staging_truncation_is_left_alone(
    no_truncate_setting: pytest.MonkeyPatch, configured: str
) -> None:
    no_truncate_setting.setenv(configured, "false")
    empty_duckdb_staging("approvalmax")
    assert os.environ[configured] == "false"
    other = SCOPED if configured == TRUNCATE else TRUNCATE
    assert other not in os.environ


def test_a_read_only_duckdb_folder_is_refused_naming_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root may write anywhere, so the tests (which run as root) cannot make a folder read-only:
    os.access stands in for what an ordinary user's would answer."""
    from approvalmax_pipeline.pipelines.warehouse.factory import check_duckdb_folder
    from approvalmax_pipeline.sources.approvalmax.errors import ConfigError

    database = tmp_path / "warehouse.duckdb"
    check_duckdb_folder(database)  # writable: passes
    monkeypatch.setattr("os.access", lambda path, mode: False)
    with pytest.raises(ConfigError, match=f"the DuckDB file {database} cannot be written"):
        check_duckdb_folder(database)


CREDENTIALS = "DESTINATION__DUCKDB__CREDENTIALS"


def test_a_relative_duckdb_path_is_taken_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dlt would resolve it against the folder the pipeline first ran in, wherever that was."""
    from approvalmax_pipeline.pipelines.warehouse.factory import default_duckdb_file

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CREDENTIALS, "data/rel.duckdb")
    default_duckdb_file()
    assert os.environ[CREDENTIALS] == str(tmp_path / "data" / "rel.duckdb")


@pytest.mark.parametrize("database", [":memory:", "md:analytics", "/abs/warehouse.duckdb"])
def test_memory_motherduck_and_absolute_duckdb_paths_are_left_alone(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from approvalmax_pipeline.pipelines.warehouse.factory import default_duckdb_file

    monkeypatch.setenv(CREDENTIALS, database)
    default_duckdb_file()
    assert os.environ[CREDENTIALS] == database
