"""The README's setup commands, typed as written, in an empty folder with no destination settings.

Defaults broke once without any test noticing (a DuckDB catalog named like the dataset), because
every test set its own file. This one sets nothing the README does not: the sandbox's `export`
lines, then each command of the marked blocks verbatim, output piped to a log file as cron would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from ..conftest import REPO, clean_environ

MARKER = "<!-- tests/e2e/test_readme.py runs this block and the next verbatim"


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    after = text[text.index(MARKER) :]
    blocks = re.findall(r"```sh\n(.*?)```", after, flags=re.DOTALL)[:2]
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def start_sandbox_process(log: Path, *args: str) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """`approvalmax sandbox` as the README starts it (with `args` if given), and the export lines it prints."""
    approvalmax = str(Path(sys.executable).parent / "approvalmax")
    env = {**clean_environ(), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [approvalmax, "sandbox", "--port", "0", *(args or ("--companies", "2", "--documents", "80"))],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", log.read_text(), flags=re.MULTILINE))
        if "SOURCES__APPROVALMAX__WEBHOOK_SECRET" in exports:  # the last one
            return process, exports
        time.sleep(0.2)
    process.kill()
    raise AssertionError("the sandbox printed no export lines: " + log.read_text())


def test_readme_setup_commands_work_verbatim_in_an_empty_folder(tmp_path: Path) -> None:
    commands = readme_commands()
    assert [c.split()[:2] for c in commands[:6]] == [
        ["approvalmax", "doctor"],
        ["approvalmax", "ping"],
        ["approvalmax", "companies"],
        ["approvalmax", "run"],
        ["approvalmax", "run"],
        ["approvalmax", "state"],
    ]
    assert commands[6].startswith("python -c") and "approvalmax_warehouse.duckdb" in commands[6]
    process, exports = start_sandbox_process(tmp_path / "sandbox.log")
    try:
        home = tmp_path / "user"
        home.mkdir()
        env = clean_environ()  # no DESTINATION__*, DLT_*, SOURCES__* from the machine
        env.update(exports)
        env.update({"HOME": str(home), "PYTHONPATH": str(REPO)})
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the activated venv
        log = home / "approvalmax.log"
        for command in commands:
            with log.open("a") as sink:
                sink.write(f"$ {command}\n")
                sink.flush()
                code = subprocess.run(
                    ["bash", "-c", command], cwd=home, env=env, stdout=sink, stderr=subprocess.STDOUT, timeout=180
                ).returncode
            assert code == 0, f"`{command}` exited {code}:\n{log.read_text()}"
        output = log.read_text()
        assert "unexpected" not in output and "Traceback" not in output, output
        assert (home / "approvalmax_warehouse.duckdb").exists()
        query = output[output.rindex("$ python -c") :]
        assert "approved" in query and "request_status" in query, query
        # the second run found nothing new, the state holds a cursor per company and type
        assert "incremental cursors" in output
    finally:
        process.terminate()
        process.wait(timeout=30)
