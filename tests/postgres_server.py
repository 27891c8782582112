"""A throwaway PostgreSQL server on a free loopback port, started with Debian's initdb/pg_ctl.

Sessions and CI run as root, which initdb refuses: the server then runs as `postgres`
through `runuser`, in a temp folder that user owns.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: `make test` installs Debian's postgresql package")
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    folder: Path
    port: int
    bin: Path
    password: bool = False  # scram-sha-256 with the password `postgres`, instead of trusting loopback

    @property
    def dsn(self) -> str:
        # dlt wants a password in the DSN even though the server trusts loopback connections
        return f"postgresql://postgres:postgres@127.0.0.1:{self.port}/postgres"

    def _as_owner(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)

    def start(self) -> None:
        data = self.folder / "data"
        auth = ["-A", "trust"]
        if self.password:
            secret = self.folder / "pwfile"
            secret.write_text("postgres\n")
            if os.geteuid() == 0:
                shutil.chown(secret, "postgres", "postgres")
            auth = ["-A", "scram-sha-256", f"--pwfile={secret}"]
        subprocess.run(
            self._as_owner(str(self.bin / "initdb"), "-D", str(data), *auth, "-U", "postgres", "--no-sync"),
            check=True,
            capture_output=True,
        )
        self.resume()

    def resume(self) -> None:
        """Start the server (again, after `pause`), waiting until it accepts connections."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        subprocess.run(
            self._as_owner(
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-o",
                options,
                "-l",
                str(self.folder / "log"),
                "-w",
                "start",
            ),
            check=True,
            capture_output=True,
        )

    def pause(self) -> None:
        """Stop the server as a maintenance window or a failover does: open connections are cut."""
        subprocess.run(
            self._as_owner(str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop"),
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run(
            self._as_owner(str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"),
            capture_output=True,
        )
        shutil.rmtree(self.folder, ignore_errors=True)

    def create_database(self, name: str) -> str:
        import psycopg2

        connection = psycopg2.connect(self.dsn)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        return self.dsn.rsplit("/", 1)[0] + "/" + name


def start_postgres(password: bool = False) -> PostgresServer:
    folder = Path(tempfile.mkdtemp(prefix="am-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    server = PostgresServer(folder, free_port(), pg_bin(), password)
    server.start()
    return server
