"""bqemulator (bigquery_server.py) on free loopback ports, from the virtualenv `make test-warehouses`
builds for it, and the two things the real client needs to reach it without a network:

- BIGQUERY_EMULATOR_HOST, which google-cloud-bigquery reads for its endpoint;
- a service-account key file whose token_uri is a token endpoint here. dlt's own service-account
  settings always fetch tokens from Google's token endpoint (its token_uri cannot be set), which
  this machine cannot reach: google-auth's refresh fails before any request is sent, and the
  client's retry repeats it for minutes. That, not the emulator, was why dlt's first query "hung"
  with nothing in the emulator's log. A key file found through GOOGLE_APPLICATION_CREDENTIALS is
  dlt's other documented way to authenticate, and it carries its own token_uri.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..postgres_server import free_port
from .snowflake_emulator import NotInstalled, wait_for_port

REPO = Path(__file__).resolve().parents[2]
# `make test-warehouses` installs bqemulator here (tests/emulators/bigquery.txt pins it)
PYTHON = Path(os.environ.get("BIGQUERY_EMULATOR_PYTHON", REPO / ".venv-bigquery-emulator" / "bin" / "python"))
SERVER = Path(__file__).with_name("bigquery_server.py")
PROJECT = "analytics-emulated"


class _TokenEndpoint(BaseHTTPRequestHandler):
    """OAuth's token endpoint as google-auth calls it: any signed assertion gets a bearer token."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"access_token": "emulated", "expires_in": 3600, "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def key_file(folder: Path, token_uri: str) -> Path:
    """A service account's key file, with a fresh RSA key (google-auth signs its assertion with it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = folder / "service-account.json"
    account = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "emulated",
        "private_key": pem,
        "client_email": f"loader@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(account))
    return path


@dataclass
class BigQueryEmulator:
    settings: dict[str, str]

    def connect(self) -> Any:
        """A DB-API connection; INFORMATION_SCHEMA is per dataset in BigQuery, so the tests' unqualified
        `information_schema.` (DuckDB, PostgreSQL, Snowflake) is read as the dataset's."""
        from google.cloud import bigquery
        from google.cloud.bigquery import dbapi

        with _environment(self.settings):
            client = bigquery.Client(project=PROJECT)
        return _Connection(dbapi.connect(client))


class _Connection:
    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def cursor(self) -> Any:
        cursor = self.connection.cursor()
        execute = cursor.execute

        def scoped(sql: str) -> Any:
            return execute(sql.replace("information_schema.", "approvalmax.INFORMATION_SCHEMA."))

        cursor.execute = scoped
        return cursor

    def close(self) -> None:
        self.connection.close()


@contextmanager
def _environment(settings: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def running_bigquery(folder: Path) -> Iterator[BigQueryEmulator]:
    if not PYTHON.exists():
        raise NotInstalled(f"the BigQuery emulator is not installed ({PYTHON}): make test-warehouses installs it")
    tokens = ThreadingHTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    threading.Thread(target=tokens.serve_forever, daemon=True).start()
    rest, grpc = free_port(), free_port()
    log = folder / "bigquery-emulator.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(PYTHON), str(SERVER), str(rest), str(grpc), PROJECT], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port(rest, process, log)
        token_uri = f"http://127.0.0.1:{tokens.server_address[1]}/token"
        settings = {
            "BIGQUERY_EMULATOR_HOST": f"http://127.0.0.1:{rest}",
            "GOOGLE_APPLICATION_CREDENTIALS": str(key_file(folder, token_uri)),
            "DESTINATION__BIGQUERY__CREDENTIALS__PROJECT_ID": PROJECT,
        }
        yield BigQueryEmulator(settings)
    finally:
        process.terminate()
        process.wait(timeout=30)
        tokens.shutdown()
