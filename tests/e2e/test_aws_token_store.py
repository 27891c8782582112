"""The AWS Secrets Manager token store on moto's server over real HTTP: shared by processes, locked by a
DynamoDB lease, crash-safe, sealed; and the client credentials read from Secrets Manager by dlt."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import pytest

from approvalmax_pipeline.sources.oauth_tokens import TokenRecord, TokenSealing, TokenStoreError, new_key
from approvalmax_pipeline.sources.oauth_tokens.aws_store import SecretsManagerTokenStore
from approvalmax_pipeline.sources.oauth_tokens.stored import AFTER_RESPONSE, AFTER_SAVE, BEFORE_REQUEST

from ..conftest import Workspace
from ..moto_server import MotoServer
from .test_exit_codes import assert_one_line
from .test_token_encryption import crash_rewrite

FORCE_REFRESH = {"SOURCES__APPROVALMAX__TOKEN_REFRESH_SKEW_SECONDS": "7200"}


def store_at(moto: MotoServer, url: str, sealing: TokenSealing | None = None) -> SecretsManagerTokenStore:
    clients = (moto.client("secretsmanager"), moto.client("dynamodb"))
    return SecretsManagerTokenStore(url, sealing=sealing or TokenSealing(), clients=clients)


def secret_text(moto: MotoServer, url: str) -> str:
    secret = url.removeprefix("aws-secretsmanager://").split("?")[0]
    return str(moto.client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"])


def aws_env(workspace: Workspace, moto: MotoServer, url: str) -> dict[str, str]:
    return {**workspace.env, **moto.env, "SOURCES__APPROVALMAX__TOKEN_STORE": url}


def dlt_reads_from_aws(moto: MotoServer, toml: str) -> dict[str, str]:
    """Put a TOML fragment where dlt's AWS Secrets Manager provider looks for [sources.approvalmax]
    (under a prefix of its own, as the server is shared), and the settings that turn the provider on."""
    prefix = f"dlt-{uuid.uuid4().hex[:8]}/"
    moto.client("secretsmanager").create_secret(Name=f"{prefix}sources/approvalmax", SecretString=toml)
    return {"PROVIDERS__ENABLE_AWS_SECRETS": "true", "PROVIDERS__AWS_SECRETS__SECRET_NAME_PREFIX": prefix}


def grants(workspace: Workspace) -> int:
    return int(workspace.admin("GET", "stats")["grants"].get("refresh_token", 0))


def test_round_trip_empty_store_and_sealing(moto: MotoServer) -> None:
    url = moto.new_store_url()
    store = store_at(moto, url)
    assert store.load() is None  # no secret yet: created by the first save
    with store.lock():
        assert store.load() is None
        store.save(TokenRecord(refresh_token="rt-1", refresh_count=3))
    loaded = store_at(moto, url).load()
    assert loaded is not None and (loaded.refresh_token, loaded.refresh_count) == ("rt-1", 3)
    key = new_key()
    sealing = store_at(moto, url, TokenSealing((key,)))
    with sealing.lock():  # a plain value read under the lock is rewritten sealed
        assert sealing.load() is not None
    sealed = secret_text(moto, url)
    assert "rt-1" not in sealed and isinstance(json.loads(sealed), str)
    reopened = store_at(moto, url, TokenSealing((key,))).load()
    assert reopened is not None and reopened.refresh_token == "rt-1"


class LaggingSecrets:
    """moto's Secrets Manager, but a read of AWSCURRENT answers `stale` (when set): a replica
    behind the last write, which moto itself never is."""

    def __init__(self, client: Any) -> None:
        self.client, self.stale = client, None

    def get_secret_value(self, **request: Any) -> Any:
        if "VersionId" not in request and self.stale is not None:
            return self.stale
        return self.client.get_secret_value(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_a_holder_never_reads_older_than_the_last_save_but_a_value_put_by_hand_wins(moto: MotoServer) -> None:
    """A read of AWSCURRENT that lags behind the last save is not believed under the lock: the
    version the last holder named in the lock table is read. A value put by hand after that save
    (a repair) is newer, and read."""
    url = moto.new_store_url()
    secret = url.removeprefix("aws-secretsmanager://").split("?")[0]
    manager = moto.client("secretsmanager")
    lagging = LaggingSecrets(manager)
    store = SecretsManagerTokenStore(url, sealing=TokenSealing(), clients=(lagging, moto.client("dynamodb")))
    with store.lock():
        store.save(TokenRecord(refresh_token="rt-old", refresh_count=1))
    lagging.stale = manager.get_secret_value(SecretId=secret)
    time.sleep(1.1)  # versions are dated to the second
    with store.lock():
        store.save(TokenRecord(refresh_token="rt-new", refresh_count=2))
    with store.lock():
        held = store.load()
    assert held is not None and held.refresh_token == "rt-new"
    time.sleep(1.1)
    by_hand = TokenRecord(refresh_token="rt-by-hand", refresh_count=9).to_json()
    manager.put_secret_value(SecretId=secret, SecretString=json.dumps(by_hand))
    lagging.stale = None
    with store.lock():
        held = store.load()
    assert held is not None and held.refresh_token == "rt-by-hand"


def test_lock_excludes_another_holder_until_released(moto: MotoServer) -> None:
    url = moto.new_store_url(lease=2)
    events: list[str] = []
    first_holds = threading.Event()

    def holder() -> None:
        with store_at(moto, url).lock():
            events.append("a locked")
            first_holds.set()
            time.sleep(3)  # longer than the lease: the heartbeat must keep it
            events.append("a releases")

    thread = threading.Thread(target=holder)
    thread.start()
    assert first_holds.wait(10)
    with store_at(moto, url).lock():
        events.append("b locked")
    thread.join()
    assert events == ["a locked", "a releases", "b locked"]


def test_a_stalled_holder_whose_lease_was_taken_over_writes_nothing(moto: MotoServer) -> None:
    url = moto.new_store_url(lease=1)
    stalled = store_at(moto, url)
    lease = stalled._lease
    lease._acquire()  # held with no heartbeat: as a process frozen past its lease
    with store_at(moto, url).lock():  # waits out the lease, then takes it over
        pass
    with pytest.raises(TokenStoreError, match="taken over by another process"):
        stalled.save(TokenRecord(refresh_token="stale"))
    assert stalled.load() is None


def test_workers_sharing_an_aws_store_make_one_refresh(workspace: Workspace, moto: MotoServer) -> None:
    # the identity server refuses a refresh token used twice: two refreshes from one token would fail
    workspace.admin("POST", "config", token_latency=1.0, refresh_grace=0.0)
    url = moto.new_store_url()
    runs = workspace.at_once(3, "ping", env=aws_env(workspace, moto, url))
    assert [run.returncode for run in runs] == [0, 0, 0], [run.stderr for run in runs]
    assert grants(workspace) == 1
    stored = store_at(moto, url).load()
    assert stored is not None and stored.refresh_count == 1


def test_workers_that_must_each_refresh_take_turns_with_the_newest_token(
    workspace: Workspace, moto: MotoServer
) -> None:
    """Four processes at once, each forced to refresh: each must refresh with the token the one before
    saved (the identity server refuses a used one at once), and no refresh may be lost."""
    url = moto.new_store_url()
    env = aws_env(workspace, moto, url)
    assert workspace.process("ping", env={"SOURCES__APPROVALMAX__TOKEN_STORE": url, **moto.env}).returncode == 0
    workspace.admin("POST", "config", token_latency=0.3, refresh_grace=0.0)
    runs = workspace.at_once(4, "ping", env={**env, **FORCE_REFRESH})
    assert [run.returncode for run in runs] == [0, 0, 0, 0], [run.stderr for run in runs]
    stored = store_at(moto, url).load()
    # every refresh was saved over the one before it: the stored count is the server's count
    assert stored is not None and stored.refresh_count == grants(workspace) >= 5


@pytest.mark.parametrize("step", [BEFORE_REQUEST, AFTER_RESPONSE, AFTER_SAVE])
def test_kill_9_holding_the_lease_loses_nothing(workspace: Workspace, moto: MotoServer, step: str) -> None:
    url = moto.new_store_url(lease=2)
    env = {"SOURCES__APPROVALMAX__TOKEN_STORE": url, **moto.env}
    assert workspace.process("ping", env=env).returncode == 0
    if step == AFTER_SAVE:  # the old token dies at once: only the saved new one can work
        workspace.admin("POST", "config", refresh_grace=0.0)
    crashed = subprocess.run(
        [sys.executable, "-m", "tests.e2e.crash_refresh", step],
        cwd=workspace.root,
        env={**aws_env(workspace, moto, url), **FORCE_REFRESH},
        capture_output=True,
        timeout=60,
    )
    assert crashed.returncode == -9
    before = grants(workspace)
    # the killed holder's lease is still in the table: the next run waits it out, then refreshes
    result = workspace.process("ping", env={**env, **FORCE_REFRESH}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert grants(workspace) > before  # it refreshed, from what the store held at the kill
    stored = store_at(moto, url).load()
    assert stored is not None and stored.refresh_token in workspace.sandbox.identity.refresh_tokens


def test_a_sealed_aws_store_keeps_no_token_readable_in_the_secret(workspace: Workspace, moto: MotoServer) -> None:
    url, key = moto.new_store_url(), new_key()
    env = {"SOURCES__APPROVALMAX__TOKEN_STORE": url, "SOURCES__APPROVALMAX__TOKEN_KEY": key, **moto.env}
    assert workspace.process("ping", env=env).returncode == 0
    assert workspace.process("ping", env={**env, **FORCE_REFRESH}).returncode == 0
    assert grants(workspace) > 1  # the seed's refresh, then the sealed stored token's
    text = secret_text(moto, url)
    assert all(token not in text for token in workspace.sandbox.identity.refresh_tokens)
    status = workspace.process("auth", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert f"token store: {url.split('&')[0]}" in status.stdout and "encryption: Fernet" in status.stdout
    wrong = workspace.process("ping", env={**env, "SOURCES__APPROVALMAX__TOKEN_KEY": new_key()})
    assert_one_line(wrong, 2, "none of the 1 key(s)")


@pytest.mark.parametrize("step", ["before-save", "after-save"])
def test_rotate_key_killed_at_either_side_of_the_save_keeps_the_token(
    workspace: Workspace, moto: MotoServer, step: str
) -> None:
    url, old, new = moto.new_store_url(lease=2), new_key(), new_key()
    env = {"SOURCES__APPROVALMAX__TOKEN_STORE": url, **moto.env}
    assert workspace.process("ping", env={**env, "SOURCES__APPROVALMAX__TOKEN_KEY": old}).returncode == 0
    crashed = crash_rewrite(workspace, {**env, "SOURCES__APPROVALMAX__TOKEN_KEY": f"{new},{old}"}, step)
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    before = grants(workspace)
    both = {**env, **FORCE_REFRESH, "SOURCES__APPROVALMAX__TOKEN_KEY": f"{new},{old}"}
    result = workspace.process("ping", env=both, timeout=60)  # waits out the killed holder's lease
    assert result.returncode == 0, result.stderr
    assert grants(workspace) > before
    assert store_at(moto, url, TokenSealing((new,))).load() is not None  # now under the new key alone


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("aws-secretsmanager://?region=eu-west-1", "no secret name"),
        ("aws-secretsmanager://s?regoin=eu-west-1", "unknown option(s) regoin"),
        ("aws-secretsmanager://s?lease=soon", "lease must be a number"),
    ],
)
def test_a_malformed_aws_url_is_one_line_exit_2(workspace: Workspace, url: str, fragment: str) -> None:
    result = workspace.cli("ping", env={"SOURCES__APPROVALMAX__TOKEN_STORE": url})
    assert_one_line(result, 2, "SOURCES__APPROVALMAX__TOKEN_STORE", fragment)


def test_without_the_aws_extra_one_line_names_it(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if boto3 were not installed
    result = workspace.cli("ping", env={"SOURCES__APPROVALMAX__TOKEN_STORE": "aws-secretsmanager://s"})
    assert_one_line(result, 2, "needs boto3", "pip install -e '.[aws]'")


def test_a_missing_lock_table_is_one_line_naming_the_fix(workspace: Workspace, moto: MotoServer) -> None:
    url = "aws-secretsmanager://approvalmax/t?lock_table=no-such-table"
    result = workspace.process("ping", env={"SOURCES__APPROVALMAX__TOKEN_STORE": url, **moto.env})
    assert_one_line(result, 1, "DynamoDB table no-such-table", "does not exist")
    assert grants(workspace) == 0


def test_client_credentials_from_secrets_manager_through_dlt(workspace: Workspace, moto: MotoServer) -> None:
    """dlt's AWS Secrets Manager provider reads [sources.approvalmax] from the secret
    <prefix>sources/approvalmax (`dlt/` by default): the client id and secret are in no file and no
    variable of the run."""
    identity = workspace.sandbox.identity
    toml = (  # a TOML fragment, merged from the root as docs/security.md shows
        f'[sources.approvalmax.credentials]\nclient_id = "{identity.client_id}"\n'
        f'client_secret = "{identity.client_secret}"\n'
    )
    env = {
        k: v
        for k, v in workspace.env.items()
        if k not in ("SOURCES__APPROVALMAX__CREDENTIALS__CLIENT_ID", "SOURCES__APPROVALMAX__CREDENTIALS__CLIENT_SECRET")
    }
    env.update(moto.env)
    env.update(dlt_reads_from_aws(moto, toml))
    missing = subprocess.run(
        [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", "ping"],
        cwd=workspace.root,
        env={**env, "PROVIDERS__ENABLE_AWS_SECRETS": "false"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line(missing, 2, "SOURCES__APPROVALMAX__CREDENTIALS__CLIENT_ID")
    result = subprocess.run(
        [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", "ping"],
        cwd=workspace.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert grants(workspace) == 1
    assert identity.client_secret not in result.stdout + result.stderr


@pytest.mark.parametrize("third_party", [False, True])
def test_a_debug_log_holds_no_token_or_client_secret(workspace: Workspace, moto: MotoServer, third_party: bool) -> None:
    """botocore logs request and response bodies at debug level: the secrets' values among them."""
    identity = workspace.sandbox.identity
    toml = f'[sources.approvalmax.credentials]\nclient_secret = "{identity.client_secret}"\n'
    url = moto.new_store_url()
    env = {
        **aws_env(workspace, moto, url),
        **FORCE_REFRESH,
        **dlt_reads_from_aws(moto, toml),
        "RUNTIME__LOG_LEVEL": "DEBUG",
    }
    del env["SOURCES__APPROVALMAX__CREDENTIALS__CLIENT_SECRET"]
    flags = ["--log-level", "debug", *(["--log-third-party"] if third_party else [])]
    for _ in range(2):  # the second reads the stored family and refreshes it
        result = subprocess.run(
            [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", *flags, "ping"],
            cwd=workspace.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "DEBUG" in result.stderr
        output = result.stdout + result.stderr
        assert identity.client_secret not in output
        assert all(token not in output for token in identity.refresh_tokens)
