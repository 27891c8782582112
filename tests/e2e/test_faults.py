"""The fault matrix: each fault, then a clean rerun; the warehouse must equal the sandbox's
ground truth (no missing rows, no duplicates, latest values, children consistent)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from approvalmax_pipeline.sandbox import Sandbox

from ..conftest import Workspace, running_sandbox, workspace_on
from .truth import assert_equals_sandbox


@pytest.fixture
def sandbox(small_sandbox: Sandbox) -> Sandbox:
    """Faults need requests more than documents: the small sandbox (about 35 requests a run)."""
    return small_sandbox


@pytest.fixture
def big_workspace(tmp_path: Path) -> Iterator[Workspace]:
    """Enough work (three companies of 500) for every phase of a run to take a while."""
    with running_sandbox(3, 500) as server, workspace_on(tmp_path, server) as made:
        yield made


# More attempts than the default, so a run under injected faults is cured by retries alone.
PATIENT = {"SOURCES__APPROVALMAX__MAX_ATTEMPTS": "10"}


def faulty_run(workspace: Workspace, knobs: dict[str, object], env: dict[str, str] | None = None) -> str:
    """A run under faults (must succeed: retries cure them), then a clean rerun."""
    workspace.admin("POST", "config", **knobs)
    result = workspace.cli("run", "--no-progress", env={**PATIENT, **(env or {})})
    assert result.returncode == 0, result.stderr[-2000:] + result.stdout[-2000:]
    assert_equals_sandbox(workspace)  # the faulty run alone was already complete
    workspace.admin("POST", "config", **{key: 0 if key != "slow_seconds" else 0.0 for key in knobs})
    workspace.admin("POST", "mutate", modify=3, add=2)
    clean = workspace.cli("run", "--no-progress")
    assert clean.returncode == 0, clean.stderr
    assert_equals_sandbox(workspace)
    return result.stdout


def by_status(workspace: Workspace) -> dict[str, int]:
    return workspace.admin("GET", "stats")["by_status"]  # type: ignore[no-any-return]


def test_429_storm_with_retry_after(workspace: Workspace) -> None:
    stdout = faulty_run(workspace, {"throttle_rate": 0.3, "retry_after_seconds": 1, "fault_seed": 11})
    assert by_status(workspace).get("429", 0) >= 5
    assert "throttled (429) 0" not in stdout


def test_client_pacing_keeps_a_rate_limited_api_free_of_429s(workspace: Workspace) -> None:
    # 4 requests per company per 1.5 s on both sides; each company needs about 10
    workspace.admin("POST", "config", rate_limit_per_minute=4, rate_window_seconds=1.5)
    paced = {
        "SOURCES__APPROVALMAX__RATE_LIMIT_PER_MINUTE": "4",
        "SOURCES__APPROVALMAX__RATE_LIMIT_WINDOW_SECONDS": "1.5",
    }
    result = workspace.cli("run", "--no-progress", env=paced)
    assert result.returncode == 0, result.stderr
    assert by_status(workspace).get("429", 0) == 0
    assert_equals_sandbox(workspace)
    # the same run without client pacing meets the limit
    workspace.admin("POST", "reset-stats")
    workspace.admin("POST", "mutate", modify=2, add=0)
    unpaced = workspace.cli(
        "run",
        "--no-progress",
        "--since",
        "2000-01-01",
        env={**PATIENT, "SOURCES__APPROVALMAX__RATE_LIMIT_PER_MINUTE": "0"},
    )
    assert unpaced.returncode == 0, unpaced.stderr
    assert by_status(workspace).get("429", 0) > 0


def test_random_5xx(workspace: Workspace) -> None:
    faulty_run(workspace, {"error_rate": 0.3, "fault_seed": 12})
    assert by_status(workspace).get("503", 0) >= 5


def test_connection_resets(workspace: Workspace) -> None:
    faulty_run(workspace, {"reset_rate": 0.2, "fault_seed": 13})
    assert by_status(workspace).get("0", 0) >= 3  # "0": reset with no answer


def test_responses_slower_than_the_timeout(workspace: Workspace) -> None:
    faulty_run(
        workspace,
        {"slow_rate": 0.15, "slow_seconds": 2.5, "fault_seed": 14},
        env={"SOURCES__APPROVALMAX__REQUEST_TIMEOUT": "1"},
    )


def test_truncated_json(workspace: Workspace) -> None:
    faulty_run(workspace, {"truncate_rate": 0.2, "fault_seed": 15})


def test_access_tokens_expiring_mid_run_refresh_ahead(workspace: Workspace) -> None:
    workspace.admin("POST", "config", access_token_lifetime=2.0, latency=0.2)
    # two requests at a time: about 40 requests then take 4 s, twice a token's life
    slow = {"SOURCES__APPROVALMAX__TOKEN_REFRESH_SKEW_SECONDS": "1", "SOURCES__APPROVALMAX__MAX_CONCURRENCY": "2"}
    result = workspace.cli("run", "--no-progress", env=slow)
    assert result.returncode == 0, result.stderr
    assert workspace.admin("GET", "stats")["grants"]["refresh_token"] >= 2
    assert_equals_sandbox(workspace)


def test_access_token_refused_before_its_exp_gets_one_refresh_and_a_retry(workspace: Workspace) -> None:
    # the server drops tokens after 1 s although their exp says an hour: only the 401 tells
    workspace.admin("POST", "config", access_token_reject_after=1.0, latency=0.2)
    result = workspace.cli("run", "--no-progress", env={"SOURCES__APPROVALMAX__MAX_CONCURRENCY": "2"})
    assert result.returncode == 0, result.stderr
    assert by_status(workspace).get("401", 0) >= 1
    assert workspace.admin("GET", "stats")["grants"]["refresh_token"] >= 2
    assert_equals_sandbox(workspace)


def test_token_response_lost_after_rotation(workspace: Workspace) -> None:
    workspace.admin("POST", "config", token_lose_next=1)
    result = workspace.cli("run", "--no-progress")
    assert result.returncode == 0, result.stderr
    # the first refresh rotated on the server and was lost; the retry with the old token
    # (inside its grace period) got the family back
    assert workspace.admin("GET", "stats")["grants"]["refresh_token"] == 2
    assert_equals_sandbox(workspace)
    assert (
        workspace.cli(
            "run", "--no-progress", env={"SOURCES__APPROVALMAX__TOKEN_REFRESH_SKEW_SECONDS": "7200"}
        ).returncode
        == 0
    )


def test_company_disabled_mid_run(workspace: Workspace) -> None:
    victim = workspace.sandbox.dataset.companies[1].company_id
    workspace.admin("POST", "config", latency=0.05)
    workspace.release()
    run = subprocess.Popen(
        [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", "run", "--no-progress"],
        cwd=workspace.root,
        env={**workspace.env, "SOURCES__APPROVALMAX__MAX_CONCURRENCY": "2"},  # the victim still has requests to make
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while workspace.admin("GET", "stats")["requests"] < 6:
        time.sleep(0.02)
    workspace.admin("POST", "config", disabled_companies=[victim])
    stdout, stderr = run.communicate(timeout=180)
    assert run.returncode == 1, stderr
    assert f"FAILED company {victim}" in stdout and "is disabled." in stdout
    others = {c.company_id for c in workspace.sandbox.dataset.companies} - {victim}
    loaded = {r[0] for r in workspace.query("select distinct company_id from approvalmax.xero_bills")}
    assert others <= loaded
    workspace.admin("POST", "config", disabled_companies=[], latency=0.0)
    assert workspace.cli("run", "--no-progress").returncode == 0
    assert_equals_sandbox(workspace)


KILL_SEEDS = int(os.environ.get("KILL_SEEDS", "3"))
PHASES = ("extract", "normalize", "load")


def wait_for_phase(workspace: Workspace, phase: str, rng: random.Random, run: subprocess.Popen[bytes]) -> bool:
    """Block until the run is inside `phase`; False if it finished first. Extract: after a
    random number of document pages; normalise: a package is extracted; load: one is normalised."""
    folder = workspace.root / "dlt" / "pipelines" / "approvalmax"
    marker = {"normalize": folder / "normalize" / "extracted", "load": folder / "load" / "normalized"}.get(phase)
    pages = rng.randint(3, 25)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if run.poll() is not None:
            return False
        if marker is None:
            if workspace.admin("GET", "stats")["documents_served"] >= pages * 10:
                return True
        elif holds_a_package(marker):
            return True
        time.sleep(0.003)
    raise AssertionError(f"the run never reached {phase}")


def holds_a_package(folder: Path) -> bool:
    """The run starts by dropping the last run's working folder, which may vanish as we look."""
    try:
        return any(folder.iterdir())
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("seed", range(KILL_SEEDS))
def test_kill_9_during_extract_normalise_or_load_then_a_clean_rerun(big_workspace: Workspace, seed: int) -> None:
    """Seeds cycle through the phases; the first three of each six kill an incremental run
    (cursors must not move without their rows), the others a backfill."""
    workspace = big_workspace
    rng = random.Random(seed)
    phase = PHASES[seed % len(PHASES)]
    incremental = (seed // len(PHASES)) % 2 == 0
    assert workspace.cli("run", "--no-progress").returncode == 0
    workspace.admin("POST", "mutate", modify=80, add=80)  # enough work for every phase to take a while
    workspace.admin("POST", "reset-stats")
    window = [] if incremental else ["--since", "2000-01-01"]
    workspace.release()
    run = subprocess.Popen(
        [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", "run", "--no-progress", *window],
        cwd=workspace.root,
        env=workspace.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    reached = wait_for_phase(workspace, phase, rng, run)
    time.sleep(rng.uniform(0, 0.03))
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    assert reached, f"seed {seed}: the {'incremental run' if incremental else 'backfill'} finished before {phase}"
    workspace.admin("POST", "mutate", modify=2, add=1)
    rerun = workspace.cli("run", "--no-progress")
    assert rerun.returncode == 0, f"seed {seed}, killed in {phase}: {rerun.stderr}"
    assert_equals_sandbox(workspace)


@pytest.mark.parametrize("phase", PHASES)
def test_ctrl_c_in_extract_normalise_or_load_exits_130_then_a_clean_rerun(big_workspace: Workspace, phase: str) -> None:
    """SIGINT, as Ctrl-C sends it: exit 130 with one line, whatever dlt wraps it in; the next run is exact."""
    workspace = big_workspace
    assert workspace.cli("run", "--no-progress").returncode == 0
    workspace.admin("POST", "mutate", modify=80, add=80)
    workspace.admin("POST", "reset-stats")
    workspace.release()
    run = subprocess.Popen(
        [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", "run", "--no-progress"],
        cwd=workspace.root,
        env=workspace.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a test run started in the background (`make test &`) ignores SIGINT,
        # and a child would inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    reached = wait_for_phase(workspace, phase, random.Random(phase), run)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=60)
    assert reached, f"the run finished before {phase}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert run.returncode == 130, stderr[-3000:]
    assert lines[-1].startswith("error: interrupted") or lines[-1].startswith("interrupted"), stderr[-3000:]
    assert "Traceback" not in stderr and "unexpected" not in stderr, stderr[-3000:]
    workspace.admin("POST", "mutate", modify=2, add=1)
    rerun = workspace.cli("run", "--no-progress")
    assert rerun.returncode == 0, f"interrupted in {phase}: {rerun.stderr}"
    assert_equals_sandbox(workspace)


CTRL_C_MOMENTS = int(os.environ.get("CTRL_C_MOMENTS", "30"))
# Before this the interpreter is starting, and Python's own handling of SIGINT applies, not ours.
INTERPRETER_START = 0.15


def interrupt_at(workspace: Workspace, seconds: float, args: list[str]) -> subprocess.CompletedProcess[str] | None:
    """Start a run and send it SIGINT (as Ctrl-C does) `seconds` later; None if it ended first."""
    run = subprocess.Popen(
        [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", *args],
        cwd=workspace.root,
        env=workspace.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as from a terminal
    )
    try:
        run.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        run.send_signal(signal.SIGINT)
        stdout, stderr = run.communicate(timeout=120)
        return subprocess.CompletedProcess(args, run.returncode, stdout, stderr)
    run.communicate()
    return None


def ended_before(result: subprocess.CompletedProcess[str]) -> bool:
    """The run had finished (its summary printed, nothing on stderr) and the interpreter was ending:
    there Python runs no more handlers (exit 0), or has left SIGINT to the system, which ends the
    process by the signal (-2; a shell shows 130)."""
    return result.returncode in (0, -signal.SIGINT) and not result.stderr and "API requests" in result.stdout


def test_ctrl_c_at_moments_spread_over_a_whole_run_exits_130_each_time_then_a_clean_rerun(
    workspace: Workspace,
) -> None:
    """SIGINT at CTRL_C_MOMENTS moments spread evenly over a backfill (which does every phase each
    time: restore, extract, normalise, load with its merges and truncates, views, history): exit 130
    and one line each time, never a traceback; run_history says `interrupted`; the next run is exact."""
    args = ["run", "--no-progress", "--since", "2000-01-01"]
    durations = []
    for _ in range(2):  # the quicker of two: a first run that happened to be slow puts moments past the end
        started = time.monotonic()
        whole = workspace.process(*args)
        durations.append(time.monotonic() - started)
        assert whole.returncode == 0, whole.stderr
    duration = min(durations)
    interrupted = 0
    for moment in range(CTRL_C_MOMENTS):
        for _attempt in range(2):
            at = INTERPRETER_START + (duration - INTERPRETER_START) * (moment + 0.5) / CTRL_C_MOMENTS
            workspace.admin("POST", "mutate", modify=2, add=1)
            workspace.release()
            started = time.monotonic()
            result = interrupt_at(workspace, at, args)
            if result is None or ended_before(result):
                # quicker than the measured runs (a busy machine made those slow): this is the run's
                # length now, and the moment is tried again once within it
                duration = min(duration, time.monotonic() - started)
                result = None
                continue
            break
        if result is None:
            continue
        interrupted += 1
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        context = f"SIGINT {at:.2f} s into a {duration:.2f} s run: {result.stderr[-3000:]}"
        assert result.returncode == 130, context
        assert lines and lines[-1].startswith("interrupted: stopped cleanly"), context
        assert "Traceback" not in result.stderr and "unexpected" not in result.stderr, context
    assert interrupted >= CTRL_C_MOMENTS * 0.8, f"only {interrupted} of {CTRL_C_MOMENTS} runs were still running"
    statuses = {status for (status,) in workspace.query("select distinct status from approvalmax.run_history")}
    assert "failed" not in statuses, statuses
    assert "interrupted" in statuses, statuses
    workspace.admin("POST", "mutate", modify=2, add=1)
    rerun = workspace.cli("run", "--no-progress")
    assert rerun.returncode == 0, rerun.stderr
    assert_equals_sandbox(workspace)
