"""request_versions and request_history against the sandbox: every version the pipeline was served,
once, with its values; ranges that chain; a deletion closes the last version."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from typing import Any

import pytest

from approvalmax_pipeline.sources.approvalmax.history import digest_of
from approvalmax_pipeline.sources.approvalmax.settings import DOCUMENT_TYPES
from approvalmax_pipeline.sources.approvalmax.timestamps import parse_timestamp

from ..conftest import Workspace
from .truth import export, status_text

TABLES = {doc.path: doc.resource for doc in DOCUMENT_TYPES}
Version = tuple[str, str, datetime]


def served(workspace: Workspace) -> dict[Version, dict[str, Any]]:
    """(company, request id, modifiedAt) -> what the sandbox serves now."""
    return {
        (company, doc["requestId"], parse_timestamp(doc["modifiedAt"])): {**doc, "type": TABLES[path]}
        for company, by_type in export(workspace).items()
        for path, docs in by_type.items()
        for doc in docs
    }


def run(workspace: Workspace, *args: str, env: dict[str, str] | None = None) -> None:
    result = workspace.cli("run", "--no-progress", *args, env=env)
    assert result.returncode == 0, result.stderr + result.stdout


def assert_history_is_what_was_served(workspace: Workspace, expected: dict[Version, dict[str, Any]]) -> None:
    rows = workspace.query(
        "select company_id, request_id, modified_at, document_type, request_status, total, currency_code, "
        "line_items_digest from approvalmax.request_versions"
    )
    keys = [(r[0], r[1], r[2]) for r in rows]
    assert len(keys) == len(set(keys)), "a version was stored twice"
    assert set(keys) == set(expected), "the versions differ from what the sandbox served"
    for company, request_id, modified, kind, status, total, currency, digest in rows:
        doc = expected[(company, request_id, modified)]
        assert kind == doc["type"]
        assert status == status_text(doc["requestStatus"])
        assert total == doc.get("total") and currency == doc.get("currencyCode")
        assert digest == digest_of(doc.get("lineItems"))


@pytest.mark.parametrize("arrow", ["true", "false"])
def test_three_rounds_of_changes_leave_exactly_the_versions_served(ws: Workspace, arrow: str) -> None:
    env = {"SOURCES__APPROVALMAX__ARROW_TABLES": arrow}
    expected = served(ws)
    run(ws, env=env)
    first_seen = dict(
        ((r[0], r[1], r[2]), r[3])
        for r in ws.query("select company_id, request_id, modified_at, first_seen_at from approvalmax.request_versions")
    )
    deleted: list[str] = []
    for round_ in range(3):
        changes = ws.admin("POST", "mutate", modify=5, add=2, delete=1 if round_ == 1 else 0)
        deleted += changes["deleted"]
        expected.update(served(ws))
        run(ws, *(["--reconcile"] if round_ == 1 else []), env=env)
        assert_history_is_what_was_served(ws, expected)
    # a sweep loads every document again, and no version's first sighting moves
    now = dict(
        ((r[0], r[1], r[2]), r[3])
        for r in ws.query("select company_id, request_id, modified_at, first_seen_at from approvalmax.request_versions")
    )
    assert all(now[key] == seen for key, seen in first_seen.items())

    history = ws.query(
        "select company_id, request_id, valid_from, valid_to, is_current from approvalmax.request_history "
        "order by company_id, request_id, valid_from"
    )
    by_document: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for row in history:
        by_document.setdefault((row[0], row[1]), []).append(row)
    live = served(ws)
    live_documents = {(company, rid) for company, rid, _modified in live}
    for (company, request_id), ranges in by_document.items():
        for earlier, later in itertools.pairwise(ranges):
            assert earlier[3] == later[2] and not earlier[4]  # each range ends where the next begins
        last = ranges[-1]
        if request_id in deleted:
            assert last[3] is not None and not last[4], "a deletion closes the last version"
        else:
            assert (company, request_id) in live_documents and last[3] is None and last[4]
    assert sum(1 for row in history if row[4]) == len(live_documents)
    changed = [key for key, ranges in by_document.items() if len(ranges) > 1]
    assert len(changed) >= 5  # the rounds changed documents, so some have several versions


def test_request_history_on_postgres(ws: Workspace, postgres_db: str) -> None:
    pg = ws.on_postgres(postgres_db)
    expected = served(pg)
    run(pg)
    pg.admin("POST", "mutate", modify=4, add=1)
    expected.update(served(pg))
    run(pg)
    assert_history_is_what_was_served(pg, expected)
    current = pg.query("select count(*) from approvalmax.request_history where is_current")
    assert current == [(len({(c, r) for c, r, _m in served(pg)}),)]
    result = pg.cli("run", "--no-progress", "--json")
    assert "request_history" in json.loads(result.stdout)["views"]
