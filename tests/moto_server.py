"""moto's AWS server on a free loopback port: Secrets Manager and DynamoDB over real HTTP, no account.

boto3 reaches it through AWS_ENDPOINT_URL (botocore's own setting), so the product code under test
builds its clients exactly as it does against AWS.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from .postgres_server import free_port

REGION = "eu-west-1"


@dataclass
class MotoServer:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to use this server as its AWS (dummy keys: moto checks none)."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }

    def client(self, service: str) -> Any:
        import boto3

        return boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        ).client(service, endpoint_url=self.url)

    def new_lock_table(self) -> str:
        """A fresh lock table, as docs/authentication.md has an operator create it."""
        name = "locks-" + uuid.uuid4().hex[:8]
        self.client("dynamodb").create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "lock_key", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "lock_key", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        return name

    def new_store_url(self, lease: float = 60) -> str:
        """A token_store setting naming a new secret and a new lock table (lease in seconds)."""
        secret = f"approvalmax/tokens-{uuid.uuid4().hex[:8]}"
        return f"aws-secretsmanager://{secret}?region={REGION}&lock_table={self.new_lock_table()}&lease={lease:g}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_moto() -> MotoServer:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = MotoServer(process, port)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{server.url}/moto-api/", timeout=2)
            return server
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError("moto's server did not start: `make install` installs moto[server]") from None
            time.sleep(0.1)
