"""`approvalmax auth`: login over a loopback listener or a pasted URL, import, status."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx

from ..conftest import Workspace


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_login(workspace: Workspace, *args: str) -> tuple[subprocess.Popen[str], str]:
    env = dict(workspace.env)
    del env["SOURCES__APPROVALMAX__CREDENTIALS__REFRESH_TOKEN"]
    workspace.release()
    process = subprocess.Popen(
        [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", "auth", "login", "--no-browser", *args],
        cwd=workspace.root,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for _ in range(20):
        line = process.stderr.readline()
        if "/connect/authorize?" in line:
            return process, line.strip()
    process.kill()
    raise AssertionError("no authorize URL printed")


def without_seed(workspace: Workspace) -> dict[str, str]:
    return {"SOURCES__APPROVALMAX__CREDENTIALS__REFRESH_TOKEN": ""}


def test_login_with_loopback_listener_then_run(workspace: Workspace) -> None:
    port = free_port()
    process, url = start_login(workspace, "--redirect-uri", f"http://127.0.0.1:{port}/callback")
    assert "response_type=code" in url and "offline_access" in url and "state=" in url
    for _ in range(200):  # the "browser", once the listener has bound its port
        try:
            response = httpx.get(url, follow_redirects=True, timeout=30)
            break
        except httpx.ConnectError:
            time.sleep(0.05)
    else:
        raise AssertionError("the login's listener never bound its port")
    assert response.status_code == 200
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "logged in: connection" in stdout
    assert workspace.token_file.stat().st_mode & 0o777 == 0o600
    result = workspace.cli("run", "--no-progress", "--resource", "companies", env=without_seed(workspace))
    assert result.returncode == 0, result.stderr
    assert workspace.admin("GET", "stats")["grants"]["authorization_code"] == 1


def test_login_headless_with_pasted_url(workspace: Workspace) -> None:
    process, url = start_login(workspace, "--paste")
    redirect = httpx.get(url, follow_redirects=False, timeout=30).headers["location"]
    _stdout, stderr = process.communicate(redirect + "\n", timeout=60)
    assert process.returncode == 0, stderr
    assert workspace.cli("ping", env=without_seed(workspace)).returncode == 0


def test_login_refuses_a_redirect_with_another_state(workspace: Workspace) -> None:
    process, url = start_login(workspace, "--paste")
    redirect = httpx.get(url.replace("state=", "state=x"), timeout=30).headers["location"]
    _stdout, stderr = process.communicate(redirect + "\n", timeout=60)
    assert process.returncode == 1
    assert "state does not match" in stderr
    assert not workspace.token_file.exists()


def test_import_verifies_and_a_stale_configured_token_does_not_override_it(workspace: Workspace) -> None:
    fresh = workspace.admin("POST", "refresh-token")["refresh_token"]
    result = workspace.process("auth", "import", input=fresh + "\n")
    assert result.returncode == 0, result.stderr
    assert "imported and verified" in result.stdout and fresh not in result.stdout
    # the configured (seed) token is unchanged; the imported family must win
    assert workspace.cli("ping").returncode == 0
    assert workspace.admin("GET", "stats")["grants"]["refresh_token"] == 1


def test_status_shows_connection_and_expiry_but_no_token(workspace: Workspace) -> None:
    assert workspace.cli("ping").returncode == 0
    result = workspace.cli("auth", "status")
    assert result.returncode == 0, result.stderr
    assert "connection: " in result.stdout and "access token: expires" in result.stdout
    assert "about 30.0 days left" in result.stdout or "about 29.9 days left" in result.stdout
    record = workspace.token_file.read_text()
    import json

    for secret in (json.loads(record)["refresh_token"], json.loads(record)["access_token"]):
        assert secret not in result.stdout + result.stderr


def test_status_without_any_token_exits_3(workspace: Workspace) -> None:
    result = workspace.cli("auth", "status", env=without_seed(workspace))
    assert result.returncode == 3
    assert "approvalmax auth login" in result.stdout


def test_login_with_the_default_https_redirect_asks_for_the_pasted_url(workspace: Workspace) -> None:
    process, url = start_login(workspace)  # no --paste: an HTTPS redirect URI cannot be listened on
    redirect = httpx.get(url, follow_redirects=False, timeout=30).headers["location"]
    assert redirect.startswith("https://localhost/approvalmax/callback?code=")
    # read through the file object: communicate() reads the pipe itself and would miss a line
    # already buffered by the readline that found the URL
    assert process.stderr is not None
    prompt = process.stderr.readline()
    assert "paste it here" in prompt
    _stdout, stderr = process.communicate(redirect + "\n", timeout=60)
    assert process.returncode == 0, stderr
