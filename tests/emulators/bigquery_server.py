"""bqemulator's server with one change, run by the BigQuery emulator's virtualenv (`python` this file).

bqemulator 1.4.0 loads DuckDB's spatial extension at start (for GEOGRAPHY) and exits when it
cannot: DuckDB downloads extensions from its own site, which this machine cannot reach. Nothing
this project loads is GEOGRAPHY, so here the emulator starts without it.

dlt uploads its own tables (the pipeline state) as gzipped newline-delimited JSON, which BigQuery
reads; bqemulator 1.4.0 hands the upload to DuckDB as it came ("Malformed JSON ... at byte 1").
Here a gzipped upload is unzipped before the load job reads it.

bqemulator 1.4.0 has no sessions: transactions exist only inside one multi-statement script. dlt
opens a transaction on BigQuery as a job of its own (`BEGIN TRANSACTION` in a new session), and
closes it with another (`COMMIT TRANSACTION;CALL BQ.ABORT_SESSION()`), which bqemulator hands to
DuckDB and fails ("cannot start a transaction within a transaction"). Here those jobs succeed
without doing anything, so the statements between them run one by one, each committed by itself:
what the emulator cannot show is that they are applied together or not at all.
Nothing else is changed.

Usage: python bigquery_server.py REST_PORT GRPC_PORT PROJECT
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import Any

from bqemulator.api.routes import jobs, upload
from bqemulator.cli import main as bqemulator
from bqemulator.storage import engine

_run_load = upload._run_load


async def run_load(*args: Any, media_path: str, **kwargs: Any) -> Any:
    """bqemulator's load of an uploaded file, unzipped first when it is gzip."""
    path = Path(media_path)
    with path.open("rb") as head:
        zipped = head.read(2) == b"\x1f\x8b"
    if zipped:
        path.write_bytes(gzip.decompress(path.read_bytes()))
    return await _run_load(*args, media_path=media_path, **kwargs)


_execute_query_job = jobs.execute_query_job
SESSION_CONTROL = {
    "BEGIN TRANSACTION",
    "COMMIT TRANSACTION;CALL BQ.ABORT_SESSION()",
    "ROLLBACK TRANSACTION;CALL BQ.ABORT_SESSION()",
}


async def execute_query_job(project_id: str, job_id: str, bq_sql: str, *args: Any, **kwargs: Any) -> Any:
    """bqemulator's query job; a session's transaction control a query of nothing."""
    if bq_sql.strip().rstrip(";").upper() in SESSION_CONTROL:
        bq_sql = "SELECT 1"
    return await _execute_query_job(project_id, job_id, bq_sql, *args, **kwargs)


def main() -> None:
    rest, grpc, project = sys.argv[1:4]
    engine.DuckDBEngine._load_spatial = lambda self: None  # type: ignore[method-assign]
    upload._run_load = run_load
    jobs.execute_query_job = execute_query_job
    sys.argv = ["bqemulator", "start", "--rest-port", rest, "--grpc-port", grpc, "--project", project]
    sys.argv += ["--log-level", "warning", "--log-format", "console"]
    bqemulator()


if __name__ == "__main__":
    main()
