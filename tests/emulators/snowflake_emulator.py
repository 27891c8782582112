"""fakesnow's server (snowflake_server.py) on a free loopback port, from the virtualenv that
`make test-warehouses` builds for it: fakesnow pins a sqlglot and a DuckDB the package cannot use."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..postgres_server import free_port

REPO = Path(__file__).resolve().parents[2]
# `make test-warehouses` installs fakesnow here (tests/emulators/snowflake.txt pins it)
PYTHON = Path(os.environ.get("SNOWFLAKE_EMULATOR_PYTHON", REPO / ".venv-snowflake-emulator" / "bin" / "python"))
SERVER = Path(__file__).with_name("snowflake_server.py")
# fakesnow takes any account, user and password; these only have to be there, as for Snowflake
ACCOUNT, USER, PASSWORD = "emulator", "loader", "not-a-secret"


class NotInstalled(RuntimeError):
    """The emulator's virtualenv is missing: the reason a warehouse test is skipped."""


@dataclass
class SnowflakeEmulator:
    port: int

    def credentials(self, database: str) -> str:
        """dlt's connection string for a database of the emulator; the connector's host, port and
        protocol ride in its query, as any connector argument may."""
        query = f"host=127.0.0.1&port={self.port}&protocol=http&warehouse=LOADING&role=LOADER"
        return f"snowflake://{USER}:{PASSWORD}@{ACCOUNT}/{database}?{query}"

    def connect(self, database: str) -> Any:
        import snowflake.connector

        return snowflake.connector.connect(
            account=ACCOUNT,
            user=USER,
            password=PASSWORD,
            database=database,
            host="127.0.0.1",
            port=self.port,
            protocol="http",
        )


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"the emulator exited: {log.read_text()[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the emulator did not listen within 30 s")


@contextmanager
def running_snowflake(folder: Path) -> Iterator[SnowflakeEmulator]:
    if not PYTHON.exists():
        raise NotInstalled(f"the Snowflake emulator is not installed ({PYTHON}): make test-warehouses installs it")
    port = free_port()
    log = folder / "snowflake-emulator.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(PYTHON), str(SERVER), str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process, log)
        yield SnowflakeEmulator(port)
    finally:
        process.terminate()
        process.wait(timeout=30)
