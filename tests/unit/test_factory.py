"""The DuckDB memory cap is a default: a configured global_config wins."""

import json
import os

import pytest

from pipelines.factory import DUCKDB_MEMORY_LIMIT, bound_duckdb_memory

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
