"""The one place that creates dlt pipelines, so names, folders and load formats stay consistent."""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.common.destination.exceptions import UnknownDestinationModule

from approvalmax_pipeline.pipelines.warehouse.target import Target
from approvalmax_pipeline.sources.approvalmax.errors import ConfigError

# DuckDB names a file's catalog after its stem, and a catalog named like the dataset makes
# `approvalmax.xero_bills` ambiguous (BinderException) for dlt and for every analyst's query.
# So the default file is not `<pipeline>.duckdb` (dlt's default) but one name for every
# pipeline, in the current folder, whose stem no dataset of ours is called.
DEFAULT_DUCKDB_FILE = "approvalmax_warehouse.duckdb"
DUCKDB_CREDENTIALS = "destination.duckdb.credentials"

# Columnar load files: on DuckDB 24 times faster to load than insert_values, at a tenth of the memory.
# Snowflake copies parquet from its stage by column name, with the types the files carry.
LOADER_FILE_FORMATS: dict[str, str] = {
    "duckdb": "parquet",
    "motherduck": "parquet",
    "bigquery": "parquet",
    "snowflake": "parquet",
}


# The destinations this connector is built and tested for, and the driver each needs, which dlt
# only imports once it connects (a missing one would surface as an unexpected ImportError then).
SUPPORTED_DESTINATIONS: dict[str, str | None] = {
    "duckdb": None,
    "postgres": "psycopg2",
    "bigquery": "google.cloud.bigquery",
    "snowflake": "snowflake.connector",
}


def check_destination(destination: str) -> None:
    """ConfigError unless `destination` is one we support with its extra installed; reads no config."""
    supported = ", ".join(SUPPORTED_DESTINATIONS)
    if destination not in SUPPORTED_DESTINATIONS:
        raise ConfigError(f"unknown destination {destination!r}: use {supported}")
    driver = SUPPORTED_DESTINATIONS[destination]
    if driver is not None:
        try:
            importlib.import_module(driver)
        except ImportError as exc:
            raise ConfigError(
                f"destination {destination!r} needs {driver.split('.')[0]}, which is not installed: "
                f"pip install -e '.[{destination}]' (or pip install 'dlt[{destination}]')"
            ) from exc


# dlt's configuration class of each supported destination, as named in its "missing field" error
_CLIENT_CONFIGURATIONS = {
    "DuckDbClientConfiguration": "duckdb",
    "PostgresClientConfiguration": "postgres",
    "BigQueryClientConfiguration": "bigquery",
    "SnowflakeClientConfiguration": "snowflake",
}


def missing_destination_settings(exc: BaseException) -> ConfigError | None:
    """dlt's "missing field" error for a destination's settings as our one-line ConfigError (exit 2)."""
    spec = getattr(exc, "spec_name", None)
    fields = getattr(exc, "fields", None)
    destination = _CLIENT_CONFIGURATIONS.get(spec) if isinstance(spec, str) else None
    if destination is None or not isinstance(fields, list):
        return None
    names = ", ".join(f"DESTINATION__{destination.upper()}__{str(f).upper()}" for f in fields)
    return ConfigError(
        f"destination {destination!r} is not configured: set {names} (or its fields; docs/destinations.md)"
    )


def resolve_destination(destination: str | Destination[Any, Any]) -> Destination[Any, Any]:
    """A dlt destination from a name such as `duckdb` or `postgres` (see check_destination)."""
    if not isinstance(destination, str):
        return destination
    check_destination(destination)
    supported = ", ".join(SUPPORTED_DESTINATIONS)
    try:
        resolved = Destination.from_reference(destination)
    except (UnknownDestinationModule, ValueError, ImportError) as exc:
        if isinstance(exc, ImportError) and not isinstance(exc, UnknownDestinationModule):
            raise ConfigError(
                f"destination {destination!r} needs extra packages: pip install -e '.[{destination}]'"
            ) from exc
        raise ConfigError(f"unknown destination {destination!r}: use {supported}") from exc
    if resolved is None:
        raise ConfigError(f"unknown destination {destination!r}: use {supported}")
    return resolved


# DuckDB may take 80% of RAM, and a backfill's merge grows with the history it loads. Capped, it
# spills to disk beside the database instead, so memory stays flat. A configured value wins.
DUCKDB_MEMORY_LIMIT = "256MB"
DUCKDB_GLOBAL_CONFIG = "destination.duckdb.credentials.global_config"


def default_duckdb_file() -> None:
    """Point DuckDB at `./approvalmax_warehouse.duckdb` unless a file is configured; a configured
    relative path is made absolute from the current folder. (dlt would resolve it against the
    folder the pipeline first ran in, which it remembers in a working folder shared by every
    project on the machine that uses the same pipeline name.)"""
    configured: object = dlt.config.get(DUCKDB_CREDENTIALS)
    if configured is None:
        os.environ[_env_name(DUCKDB_CREDENTIALS)] = os.path.abspath(DEFAULT_DUCKDB_FILE)
    elif isinstance(configured, str) and is_relative_file(configured):
        os.environ[_env_name(DUCKDB_CREDENTIALS)] = os.path.abspath(configured)


def is_relative_file(database: str) -> bool:
    """A DuckDB file given by a relative path (not `:memory:`, MotherDuck's `md:` or a URL)."""
    return not (database.startswith((":", "md:")) or "://" in database or os.path.isabs(database))


def check_duckdb_catalog(database: str, dataset_name: str) -> None:
    """A DuckDB file whose stem is the dataset's name cannot be queried as `dataset.table`."""
    stem = Path(database).name.split(".")[0]
    if stem.lower() == dataset_name.lower():
        raise ConfigError(
            f"the DuckDB file {database} would name its catalog {stem!r}, like the dataset, and DuckDB "
            f"then cannot tell `{dataset_name}.<table>` apart: name the file otherwise "
            "(DESTINATION__DUCKDB__CREDENTIALS) or pick another --dataset"
        )


def _env_name(key: str) -> str:
    return key.upper().replace(".", "__")


def bound_duckdb_memory() -> None:
    if dlt.config.get(DUCKDB_GLOBAL_CONFIG) is None:
        os.environ[_env_name(DUCKDB_GLOBAL_CONFIG)] = json.dumps({"memory_limit": DUCKDB_MEMORY_LIMIT})


# dlt merges through a staging copy of every merged table and leaves that copy in the file until
# the next load empties it: the file carries the biggest load twice, and the checkpoint as the
# dataset lock is released writes it twice. A configured value wins.
TRUNCATE_STAGING = "load.truncate_staging_dataset"


def empty_duckdb_staging(pipeline_name: str) -> None:
    """Set for this pipeline name only (dlt reads `<pipeline>.load.*` first), so a pipeline of
    another destination in the same process keeps dlt's own default."""
    scoped = f"{pipeline_name}.{TRUNCATE_STAGING}"
    if dlt.config.get(TRUNCATE_STAGING) is None and dlt.config.get(scoped) is None:
        os.environ[_env_name(scoped)] = "true"


def completed_target(target: Target, token_store: str, retry_seconds: float | None = None) -> Target:
    """The target with its destination resolved, its dataset lock beside the token family (the
    `token_store` setting) unless the caller named another home, and the `warehouse_retry_seconds`
    setting when given."""
    return replace(
        target,
        destination=resolve_destination(target.destination),
        lock_home=target.lock_home or token_store,
        retry_seconds=target.retry_seconds if retry_seconds is None else retry_seconds,
    )


def loader_file_format(destination: Destination[Any, Any]) -> str | None:
    return LOADER_FILE_FORMATS.get(destination.destination_name)


def make_pipeline(target: Target) -> dlt.Pipeline:
    """The target's dlt pipeline, its working folder as it is (see working_folder.restored_pipeline)."""
    resolved = resolve_destination(target.destination)
    dataset_name, pipeline_name, pipelines_dir = target.dataset, target.pipeline_name, target.pipelines_dir
    if resolved.destination_name == "duckdb":
        default_duckdb_file()
        bound_duckdb_memory()
        empty_duckdb_staging(target.pipeline_name)
    # pipelines_dir None means dlt's default (DLT_DATA_DIR, else ~/.dlt/pipelines)
    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=resolved,
        dataset_name=dataset_name,
        pipelines_dir=pipelines_dir,  # type: ignore[arg-type]
    )
    path = duckdb_path(pipeline)
    if path is not None:
        check_duckdb_catalog(str(path), dataset_name)
        check_duckdb_folder(path)
    return pipeline


def check_duckdb_folder(database: Path) -> None:
    """A typo in the path must not create folders, nor fail later inside DuckDB."""
    folder = database.parent
    setting = _env_name(DUCKDB_CREDENTIALS)
    if not folder.is_dir():
        raise ConfigError(
            f"the folder of the DuckDB file {database} does not exist (or is not a folder): create it, "
            f"or point {setting} at a file in an existing folder"
        )
    if not os.access(folder, os.W_OK | os.X_OK) or (database.exists() and not os.access(database, os.W_OK)):
        raise ConfigError(
            f"the DuckDB file {database} cannot be written (read-only folder or file): fix its permissions, "
            f"or point {setting} at a writable place"
        )


def duckdb_path(pipeline: dlt.Pipeline) -> Path | None:
    """The DuckDB file a pipeline writes to (None for other destinations); opens nothing."""
    credentials = duckdb_credentials(pipeline)
    return Path(credentials.database) if credentials is not None else None


def duckdb_credentials(pipeline: dlt.Pipeline) -> Any:
    """dlt's credentials of the DuckDB file a pipeline writes to (None for other destinations)."""
    if pipeline.destination is None or pipeline.destination.destination_name != "duckdb":
        return None
    credentials = pipeline.destination_client().config.credentials
    database = getattr(credentials, "database", None)
    return credentials if isinstance(database, str) and database != ":memory:" else None
