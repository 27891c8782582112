"""What operators see in a log file (stdout and stderr not a terminal), and what is sent where."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator

import pytest

from ..conftest import REPO, Workspace
from ..receiver import receiver


def test_each_failure_is_one_whole_line_in_a_log(ws: Workspace) -> None:
    victim = ws.sandbox.dataset.companies[0].company_id
    ws.admin("POST", "config", disabled_companies=[victim])
    result = ws.process("run", "--no-progress")  # output into pipes, as into a log file
    assert result.returncode == 1, result.stderr
    failed = [line for line in result.stdout.splitlines() if "FAILED" in line]
    assert failed, result.stdout
    for line in failed:
        # company id, resource and the API's message, on the one line grep finds
        assert re.match(rf"^FAILED company {victim} \(.+\) · \w+ · .*is disabled\.", line), line
    assert all(len(line) <= 4096 for line in result.stdout.splitlines())
    assert "…" not in result.stdout


def test_state_prints_whole_ids_and_cursors_in_a_log(ws: Workspace) -> None:
    assert ws.cli("run", "--no-progress").returncode == 0
    state = ws.process("state")
    assert state.returncode == 0, state.stderr
    assert "…" not in state.stdout
    for company in ws.sandbox.dataset.companies:
        assert company.company_id in state.stdout  # never cut
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)", state.stdout)


def test_progress_in_a_log_is_a_line_every_few_seconds(ws: Workspace) -> None:
    ws.admin("POST", "config", latency=0.4)  # about 35 requests, two at a time: 7 s or more
    result = ws.process("run", "--progress", env={"SOURCES__APPROVALMAX__MAX_CONCURRENCY": "2"})
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
    assert lines, result.stderr
    assert all(re.match(r"^progress: \w+ · \d+ requests · \d+ rows · \d+ retries · \d+ s$", line) for line in lines)
    assert "\r" not in result.stderr and "\x1b[" not in result.stderr  # no live-display control codes


def test_version(ws: Workspace) -> None:
    result = ws.cli("--version")
    assert result.returncode == 0
    assert re.match(
        r"^approvalmax-pipeline \d+\.\d+\.\d+ \(dlt \d+\.\d+\.\d+, Python 3\.\d+\.\d+\)$", result.stdout.strip()
    )


@pytest.fixture
def telemetry_endpoint() -> Iterator[tuple[str, list[str]]]:
    with receiver() as got:
        yield got.url, got.paths


def test_dlt_telemetry_is_off_unless_turned_on(ws: Workspace, telemetry_endpoint: tuple[str, list[str]]) -> None:
    url, seen = telemetry_endpoint
    endpoint = {"RUNTIME__DLTHUB_TELEMETRY_ENDPOINT": url}
    assert ws.process("run", "--no-progress", env=endpoint).returncode == 0
    assert seen == []
    turned_on = ws.process("run", "--no-progress", env={**endpoint, "RUNTIME__DLTHUB_TELEMETRY": "true"})
    assert turned_on.returncode == 0
    assert seen  # the same run does send once asked: the receiver would have seen the first
    shipped = tomllib.loads((REPO / ".dlt" / "config.toml").read_text())
    assert shipped["runtime"]["dlthub_telemetry"] is False


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def test_a_debug_log_has_one_format_and_no_third_party_noise_unless_asked(ws: Workspace) -> None:
    quiet = ws.process("--log-level", "debug", "run", "--no-progress")
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    records = [line for line in quiet.stderr.splitlines() if LOG_LINE.match(line)]
    names = {line.split()[3].rstrip(":") for line in records}
    assert "dlt" in names  # dlt's records, in our layout
    assert not names & {"httpcore.http11", "httpcore.connection", "httpx", "filelock"}, names
    starts = [line for line in quiet.stderr.splitlines() if re.match(r"^\d{4}-\d\d-\d\d", line)]
    assert starts == records  # every record that starts a line has the one layout
    noisy = ws.process("--log-level", "debug", "--log-third-party", "run", "--no-progress")
    assert noisy.returncode == 0
    assert any(" DEBUG httpcore." in line for line in noisy.stderr.splitlines())


def test_an_info_log_is_the_run_in_tens_of_lines_without_dlts_hint_warnings(ws: Workspace) -> None:
    """Phases, companies, counts, API totals: the run readable at a glance. dlt's own info records
    (a line per normaliser, job and pool) come with --log-level debug."""
    result = ws.process("--log-level", "info", "run", "--no-progress")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert 5 <= len(lines) <= 60, result.stderr
    assert not [line for line in lines if "column hints were different" in line or "overwrite arrow hint" in line]
    for company in ws.sandbox.dataset.company_ids():
        assert any(f"company {company}: " in line for line in lines), result.stderr
    assert any("API: " in line and " requests" in line for line in lines), result.stderr
    # at debug dlt logs each column whose hint differs: there is none
    debug = ws.process("--log-level", "debug", "run", "--no-progress", "--since", "2000-01-01")
    assert debug.returncode == 0, debug.stderr[-3000:]
    assert "overwrite arrow hint" not in debug.stderr and "column hints were different" not in debug.stderr
