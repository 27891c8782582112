"""Pipelines: the dlt pipeline factory, the run orchestration, the CLI and the Airflow DAG."""
