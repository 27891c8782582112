"""Record and replay: the real API's shapes in a bug report, with nothing personal in it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from approvalmax_pipeline.sandbox import start_sandbox
from approvalmax_pipeline.sandbox.replay import Replay

from ..conftest import Workspace, workspace_env
from ..warehouse_compare import columns

# What must never reach a recording, listed here independently of recording.py's own rules.
MUST_HIDE = frozenset(
    {
        "name",
        "firstName",
        "lastName",
        "email",
        "contact",
        "description",
        "comment",
        "fileName",
        "documentName",
        "reference",
        "value",
        "deliveryAddress",
        "recipientEmail",
    }
)


def is_personal(key: str) -> bool:
    return key in MUST_HIDE


def personal_values(value: Any, key: str = "", under: bool = False) -> Iterator[str]:
    """Every original text a recording must not hold: under personal keys of the ground truth."""
    if isinstance(value, dict):
        for name, item in value.items():
            if name != "requestStatus":
                yield from personal_values(item, name, under or is_personal(name))
    elif isinstance(value, list):
        for item in value:
            yield from personal_values(item, key, under)
    elif isinstance(value, str) and (under or is_personal(key)):
        yield value


def public_values(value: Any, key: str = "", kept: bool = False, under: bool = False) -> Iterator[str]:
    """Texts under keys that are not personal (statuses, numbers, codes)."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield from public_values(item, name, kept or name == "requestStatus", under or is_personal(name))
    elif isinstance(value, list):
        for item in value:
            yield from public_values(item, key, kept, under)
    elif isinstance(value, str) and (kept or not (under or is_personal(key))):
        yield value


def leaves(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    elif isinstance(value, str):
        yield value


def table_counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as connection:
        names = [t for t in columns(connection, "approvalmax")]
        return {t: connection.execute(f'select count(*) from approvalmax."{t}"').fetchone()[0] for t in names}


def test_a_recording_replays_to_the_same_tables_types_and_counts_and_leaks_nothing(
    ws: Workspace, tmp_path: Path
) -> None:
    ws.admin("POST", "config", unknown_fields=True)  # free text in fields nobody listed, too
    recording = tmp_path / "recording"
    result = ws.cli("run", "--no-progress", "--record", str(recording))
    assert result.returncode == 0, result.stderr + result.stdout
    doctor = ws.cli("doctor", "--record", str(recording))
    assert doctor.returncode == 0, doctor.stdout

    # nothing personal, no token, no secret
    sandbox = ws.sandbox
    export = ws.admin("GET", "export")  # company -> type path -> documents; the paths are no field names
    truth = [doc for by_type in export.values() for documents in by_type.values() for doc in documents]
    originals = set(personal_values(truth))
    originals |= set(personal_values([u for users in sandbox.dataset.users.values() for u in users]))
    originals |= {c.name for c in sandbox.dataset.companies}
    # a comment may say what a status says ("Approved"); only text nowhere else public counts
    originals -= set(public_values(truth))
    assert len(originals) > 100 and "Wellington" in originals  # the unknown address object's city too
    raw = "\n".join(p.read_text() for p in sorted(recording.glob("*.json")))
    recorded = set(leaves([json.loads(p.read_text()) for p in recording.glob("*.json")]))
    assert not sorted(originals & recorded)
    assert not [v for v in originals if len(v) >= 6 and v in raw]
    for secret in (ws.env["SOURCES__APPROVALMAX__CREDENTIALS__REFRESH_TOKEN"], sandbox.identity.client_secret):
        assert secret not in raw
    assert "Bearer" not in raw and "access_token" not in raw

    # replayed into a fresh warehouse: the same tables, column types and row counts
    replay = start_sandbox(replay=Replay.load(recording))
    try:
        root = tmp_path / "replayed"
        root.mkdir()
        replayed = Workspace(root, replay, workspace_env(root, replay, replay.identity.issue_refresh_token()))
        again = replayed.cli("run", "--no-progress")
        assert again.returncode == 0, again.stderr + again.stdout
    finally:
        replay.stop()
    with (
        duckdb.connect(str(ws.duckdb_file), read_only=True) as original,
        duckdb.connect(str(replayed.duckdb_file), read_only=True) as copy,
    ):
        assert columns(original, "approvalmax") == columns(copy, "approvalmax")
    assert table_counts(ws.duckdb_file) == table_counts(replayed.duckdb_file)
    # statuses are codes, not text anybody typed: they survive
    statuses = "select request_status, count(*) from approvalmax.xero_bills group by 1 order by 1"
    assert ws.query(statuses) == replayed.query(statuses)
