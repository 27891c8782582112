"""`approvalmax --version` and `--help` answer without importing what only a run needs.

The start-up time itself is a `make bench` row; this guards its cause: dlt, pyarrow, httpx and
PyJWT (with cryptography) cost most of a second to import, and none of them is needed to print
the version or the help.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..conftest import REPO

HEAVY = ("dlt", "pyarrow", "httpx", "jwt", "duckdb", "rich.markdown")

PROBE = """
import json, sys
heavy = json.loads(sys.argv[2])
sys.argv = ["approvalmax", *json.loads(sys.argv[1])]
from approvalmax_pipeline.pipelines.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(name for name in heavy if name in sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["auth", "--help"]])
def test_version_and_help_import_nothing_heavy(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip(), done.stderr
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []


def test_version_names_dlt_from_its_metadata() -> None:
    from importlib.metadata import version

    done = subprocess.run(
        [sys.executable, "-m", "approvalmax_pipeline.pipelines.cli", "--version"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"(dlt {version('dlt')}, Python" in done.stdout


def test_the_command_leaves_its_objects_out_of_the_exit_collections() -> None:
    """At exit the interpreter collects every object still alive, several times over (0.35-0.45 s
    after a run); objects frozen when the command returns are skipped."""
    probe = (
        "import gc, sys\n"
        "sys.argv = ['approvalmax', '--version']\n"
        "from approvalmax_pipeline.pipelines.cli import main\n"
        "before = gc.get_freeze_count()\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(before, gc.get_freeze_count(), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60)
    before, after = map(int, done.stderr.split()[-2:])
    assert before == 0 and after > 10_000, done.stderr


FREEZE_PROBE = """
import gc, json, sys
from approvalmax_pipeline.pipelines.cli import app as commands
from approvalmax_pipeline.pipelines.cli.app import ONE_COMMAND_PROCESS
ONE_COMMAND_PROCESS["freeze"] = sys.argv[1] == "one-command"  # as `main` sets it, without its exit freeze
sys.argv = ["approvalmax", "run", "--destination", "no-such-warehouse"]
try:
    commands()
except SystemExit:
    pass
print(json.dumps({"frozen": gc.get_freeze_count(), "dlt": "dlt" in sys.modules}), file=sys.stderr)
"""


@pytest.mark.parametrize("entry", ["one-command", "app"])
def test_a_run_freezes_its_imports_only_in_a_process_of_its_own(entry: str) -> None:
    """`approvalmax run` freezes what its imports made before it starts (a refused destination
    comes after); a caller of `app` in its own process, such as the tests' runner, keeps its heap."""
    done = subprocess.run(
        [sys.executable, "-c", FREEZE_PROBE, entry], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    found = json.loads(done.stderr.strip().splitlines()[-1])
    assert found["dlt"], done.stderr
    assert (found["frozen"] > 100_000) == (entry == "one-command"), found
