"""Bad input and lost authorisation: one clear line on stderr, the documented exit code, no traceback."""

from __future__ import annotations

import subprocess

import pytest

from ..conftest import Workspace


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    assert "unexpected" not in lines[0]  # every bad input is classified and names its fix
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--company", "not-a-company"], ["unknown company not-a-company", "approvalmax companies"]),
        (["--resource", "bills"], ["unknown resource 'bills'", "xero_bills"]),
        (["--since", "2025-02-30"], ["--since '2025-02-30' is not a date", "YYYY-MM-DD"]),
        (["--since", "2025-03-01", "--until", "2025-02-01"], ["--since must be earlier than --until"]),
        (["--destination", "nosuch"], ["unknown destination 'nosuch'"]),
        (
            ["--destination", "redshift"],
            ["unknown destination 'redshift'", "use duckdb, postgres, bigquery, snowflake"],
        ),
        (["--reconcile", "--since", "2025-01-01"], ["--reconcile", "cannot take --since/--until"]),
        (
            ["--destination", "snowflake"],
            ["destination 'snowflake' is not configured", "DESTINATION__SNOWFLAKE__CREDENTIALS"],
        ),
    ],
)
def test_usage_errors_exit_2(workspace: Workspace, args: list[str], fragments: list[str]) -> None:
    assert_one_line(workspace.cli("run", "--no-progress", *args), 2, *fragments)


def test_missing_credentials_exit_2_and_name_the_variable(workspace: Workspace) -> None:
    env = dict(workspace.env)
    del env["SOURCES__APPROVALMAX__CREDENTIALS__CLIENT_SECRET"]
    workspace.env = env
    assert_one_line(workspace.cli("run"), 2, "SOURCES__APPROVALMAX__CREDENTIALS__CLIENT_SECRET")


def test_unknown_refresh_token_exit_3_with_how_to_reauthorise(workspace: Workspace) -> None:
    result = workspace.cli("run", env={"SOURCES__APPROVALMAX__CREDENTIALS__REFRESH_TOKEN": "not-a-real-token"})
    assert_one_line(result, 3, "invalid_grant", "approvalmax auth login")
    # no data: only the run's own record of its failure (run_history, and dlt's tables for it)
    tables = {
        t
        for (t,) in workspace.query(
            "select table_name from information_schema.tables where table_schema = 'approvalmax'"
        )
    }
    assert {t for t in tables if not t.startswith("_dlt")} == {"run_history", "company_freshness"}
    assert workspace.query("select status, company_id from approvalmax.run_history") == [("failed", None)]


def test_wrong_client_secret_exit_3(workspace: Workspace) -> None:
    result = workspace.cli("ping", env={"SOURCES__APPROVALMAX__CREDENTIALS__CLIENT_SECRET": "wrong"})
    assert_one_line(result, 3, "client id or secret")


def test_disabled_connection_exit_3(workspace: Workspace) -> None:
    assert workspace.cli("ping").returncode == 0
    workspace.admin("POST", "revoke", mode="disable")
    assert_one_line(workspace.cli("run", "--no-progress"), 3, "disabled or deleted", "Connections page")
    workspace.admin("POST", "enable")
    assert workspace.cli("ping").returncode == 0  # re-enabled: the stored tokens work again


def test_deleted_connection_exit_3(workspace: Workspace) -> None:
    assert workspace.cli("ping").returncode == 0
    workspace.admin("POST", "revoke", mode="delete")
    assert_one_line(workspace.cli("run", "--no-progress"), 3, "approvalmax auth login")


def test_corrupt_token_file_exit_2_and_left_untouched(workspace: Workspace) -> None:
    workspace.token_file.parent.mkdir(parents=True)
    workspace.token_file.write_text('{"refresh_token": "abc')
    workspace.token_file.chmod(0o600)
    assert_one_line(workspace.cli("run"), 2, "corrupt or truncated")
    assert workspace.token_file.read_text() == '{"refresh_token": "abc'


def test_token_file_readable_by_others_exit_2(workspace: Workspace) -> None:
    assert workspace.cli("ping").returncode == 0
    workspace.token_file.chmod(0o644)
    assert_one_line(workspace.cli("ping"), 2, "chmod 600")


def test_api_unreachable_exit_1(workspace: Workspace) -> None:
    result = workspace.cli(
        "ping",
        env={"SOURCES__APPROVALMAX__API_BASE_URL": "http://127.0.0.1:9", "SOURCES__APPROVALMAX__MAX_ATTEMPTS": "2"},
    )
    assert_one_line(
        result, 1, "cannot reach the API at http://127.0.0.1:9", "GET /ping failed 2 time(s)", "api_base_url"
    )


def test_html_instead_of_json_exit_1(workspace: Workspace) -> None:
    workspace.admin("POST", "config", html_responses=True)
    assert_one_line(workspace.cli("companies"), 1, "instead of JSON", "is api_base_url")


def test_unreadable_config_file_exit_2_and_left_untouched(workspace: Workspace) -> None:
    config = workspace.root / ".dlt" / "config.toml"
    config.parent.mkdir()
    broken = '[sources.approvalmax]\nlookback_minutes = "10\n'
    config.write_text(broken)
    assert_one_line(workspace.cli("run"), 2, "cannot read config.toml", "line 2", "fix the TOML syntax")
    assert config.read_text() == broken


def test_no_command_prints_help_and_exit_2(workspace: Workspace) -> None:
    result = workspace.cli("run", "--no-such-option")
    assert result.returncode == 2
    assert "No such option" in result.stderr and "Traceback" not in result.stderr


def test_a_duckdb_file_named_like_the_dataset_exits_2_before_any_api_call(workspace: Workspace) -> None:
    clashing = str(workspace.root / "approvalmax.duckdb")
    result = workspace.cli("run", "--no-progress", env={"DESTINATION__DUCKDB__CREDENTIALS": clashing})
    assert_one_line(result, 2, "would name its catalog 'approvalmax'", "--dataset")
    assert workspace.admin("GET", "stats")["requests"] == 0
    assert not (workspace.root / "approvalmax.duckdb").exists()


def test_a_missing_extra_exit_2_with_the_pip_command(workspace: Workspace) -> None:
    """psycopg2 made unimportable, as in an install without the postgres extra."""
    fake = workspace.root / "no_psycopg2"
    (fake / "psycopg2").mkdir(parents=True)
    (fake / "psycopg2" / "__init__.py").write_text("raise ImportError(\"No module named 'psycopg2'\")\n")
    env = {"PYTHONPATH": f"{fake}:{workspace.env['PYTHONPATH']}"}
    result = workspace.process("run", "--no-progress", "-d", "postgres", env=env)
    assert_one_line(result, 2, "destination 'postgres' needs psycopg2", "pip install -e '.[postgres]'")
    assert workspace.admin("GET", "stats")["requests"] == 0


@pytest.mark.parametrize("where", ["missing folder", "a file as the folder"])
def test_a_duckdb_path_in_no_folder_exit_2_naming_it_and_creates_nothing(workspace: Workspace, where: str) -> None:
    parent = workspace.root / "no" / "such"
    if where == "a file as the folder":
        parent = workspace.root / "notes.txt"
        parent.write_text("a file")
    database = parent / "warehouse.duckdb"
    result = workspace.cli("run", "--no-progress", env={"DESTINATION__DUCKDB__CREDENTIALS": str(database)})
    assert_one_line(
        result, 2, f"the folder of the DuckDB file {database} does not exist", "DESTINATION__DUCKDB__CREDENTIALS"
    )
    assert not (workspace.root / "no").exists()
    assert workspace.admin("GET", "stats")["requests"] == 0


def test_the_sandbox_on_a_busy_port_exit_2(workspace: Workspace) -> None:
    busy = workspace.sandbox.url.rsplit(":", 1)[1]
    assert_one_line(workspace.cli("sandbox", "--port", busy), 2, f"cannot serve on 127.0.0.1:{busy}", "--port")


def test_listen_without_a_webhook_secret_or_on_a_busy_port_exit_2(workspace: Workspace) -> None:
    assert_one_line(workspace.cli("listen", "--port", "0"), 2, "SOURCES__APPROVALMAX__WEBHOOK_SECRET", "secrets")
    short = {"SOURCES__APPROVALMAX__WEBHOOK_SECRET": "short"}
    assert_one_line(workspace.cli("listen", "--port", "0", env=short), 2, "WEBHOOK_SECRET must be set to 16")
    busy = workspace.sandbox.url.rsplit(":", 1)[1]
    secret = {"SOURCES__APPROVALMAX__WEBHOOK_SECRET": "a-long-enough-secret-1234"}
    result = workspace.cli("listen", "--port", busy, "--queue", str(workspace.root / "q.sqlite"), env=secret)
    assert_one_line(result, 2, f"cannot listen on 127.0.0.1:{busy}", "--port")
