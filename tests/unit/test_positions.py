"""Per-company positions: which companies get a `_approvalmax_cursors` row, what the previous version
left in dlt state, and which rows a run starts from (only those of completed loads, newest first)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest

from approvalmax_pipeline.sources.approvalmax.extract_options import ExtractOptions
from approvalmax_pipeline.sources.approvalmax.pages import Page, read_envelope
from approvalmax_pipeline.sources.approvalmax.positions import read_positions
from approvalmax_pipeline.sources.approvalmax.settings import DOCUMENT_TYPES
from approvalmax_pipeline.sources.approvalmax.source import documents_resource
from approvalmax_pipeline.sources.approvalmax.state_layout import (
    Position,
    Positions,
    changed_rows,
    merge_legacy,
    snapshot,
    state_of,
)

BILLS = next(doc for doc in DOCUMENT_TYPES if doc.resource == "xero_bills")
CURSOR = "2025-01-01T01:00:00.000000Z"
LATER = "2025-01-01T02:00:00.000000Z"


def state() -> dict[str, Any]:
    return {
        "cursors": {"c1": CURSOR, "c2": CURSOR},
        "sweeps": {"c1": {"at": CURSOR, "load_id": "1700000000.1"}},
        "loaded_versions": {"c1": {"r1": CURSOR}},
        "not_applicable": ["c3"],
    }


def test_a_resource_whose_positions_did_not_move_writes_no_row() -> None:
    now = state()
    assert changed_rows("p", "xero_bills", snapshot(state()), now) == []


def test_only_the_company_whose_cursor_moved_gets_a_row() -> None:
    now = state()
    now["cursors"]["c2"] = LATER
    (row,) = changed_rows("p", "xero_bills", snapshot(state()), now)
    assert (row["company_id"], row["cursor_value"], row["loaded_versions"]) == ("c2", LATER, None)


def test_new_loaded_versions_or_a_company_found_to_have_the_type_are_changes() -> None:
    now = state()
    now["loaded_versions"]["c1"]["r2"] = LATER
    now["not_applicable"].remove("c3")
    rows = changed_rows("p", "xero_bills", snapshot(state()), now)
    assert [(r["company_id"], r["not_applicable"]) for r in rows] == [("c1", False), ("c3", False)]
    assert json.loads(rows[0]["loaded_versions"]) == {"r1": CURSOR, "r2": LATER}


def test_a_row_holds_the_whole_position_and_reads_back_to_the_same_state() -> None:
    rows = changed_rows("p", "xero_bills", {}, state(), every=True)
    assert [r["company_id"] for r in rows] == ["c1", "c2", "c3"]
    read = {
        r["company_id"]: Position(
            r["cursor_value"], r["swept_at"], r["sweep_load_id"], r["loaded_versions"], r["not_applicable"]
        )
        for r in rows
    }
    assert state_of(read) == state()


def legacy(resources: dict[str, Any]) -> dict[str, Any]:
    return {"sources": {"approvalmax": {"resources": resources}}}


def test_positions_only_dlt_state_holds_are_read_from_there() -> None:
    merged = merge_legacy({}, legacy({"xero_bills": state()}))
    assert merged.cursors() == {"xero_bills": {"c1": CURSOR, "c2": CURSOR}}
    assert merged.sweep_loads(["xero_bills"]) == {"xero_bills": {"c1": "1700000000.1"}}
    assert merged.resource_state("xero_bills") == state()


def test_what_dlt_state_still_holds_for_a_company_wins_over_the_table_and_other_companies_keep_their_rows() -> None:
    table = {"xero_bills": {"c1": Position(cursor=LATER), "c9": Position(cursor=LATER)}, "xero_invoices": {}}
    merged = merge_legacy(table, legacy({"xero_bills": {"cursors": {"c1": CURSOR}}, "xero_invoices": {"x": 1}}))
    assert merged.cursors() == {"xero_bills": {"c1": CURSOR, "c9": LATER}}


def test_a_resources_state_is_a_copy_a_run_may_change() -> None:
    positions = Positions({"xero_bills": {"c1": Position(cursor=CURSOR)}})
    positions.resource_state("xero_bills")["cursors"]["c1"] = LATER
    assert positions.cursors() == {"xero_bills": {"c1": CURSOR}}


class CompanyPages:
    """Stands in for ApprovalMaxClient: each company's one page of documents, as the API sends it."""

    refused_filters: frozenset[str] = frozenset()

    def __init__(self, pages: dict[str, list[dict[str, Any]]]) -> None:
        self.pages = pages

    def in_flight(self, companies: int) -> int:
        return 2

    def documents(self, company_id: str, path: str, params: dict[str, str]) -> Iterator[Page]:
        body = json.dumps({"payload": self.pages[company_id], "continuationToken": None}).encode()
        yield read_envelope(body, datetime(2025, 6, 1, tzinfo=UTC))


def bill(request_id: str, modified: str) -> dict[str, Any]:
    return {"requestId": request_id, "modifiedAt": modified, "total": 1.0}


def run(pipeline: dlt.Pipeline, pages: dict[str, list[dict[str, Any]]]) -> None:
    resource = documents_resource(CompanyPages(pages), sorted(pages), BILLS, ExtractOptions(reconcile_every=None))  # type: ignore[arg-type]
    pipeline.run(resource, loader_file_format="parquet")


def rows(database: Path) -> list[tuple[str, str | None]]:
    with duckdb.connect(str(database), read_only=True) as connection:
        found = connection.execute(
            "select company_id, cursor_value from approvalmax._approvalmax_cursors order by _dlt_load_id, company_id"
        )
        return [(str(c), v) for c, v in found.fetchall()]


def test_a_quiet_run_writes_no_row_and_a_change_writes_that_companys_only(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    pipeline = dlt.pipeline(
        "positions", destination=dlt.destinations.duckdb(str(database)), dataset_name="approvalmax",
        pipelines_dir=str(tmp_path / "dlt"),
    )  # fmt: skip
    pages = {"c1": [bill("a", "2025-01-01T00:00:00Z")], "c2": [bill("b", "2025-01-01T00:00:00Z")]}
    run(pipeline, pages)
    first = rows(database)
    assert [company for company, _ in first] == ["c1", "c2"]
    run(pipeline, pages)
    assert rows(database) == first
    pages["c2"].append(bill("c", "2025-02-01T00:00:00Z"))
    run(pipeline, pages)
    assert rows(database) == [*first, ("c2", "2025-02-01T00:00:00.000000Z")]
    assert '"cursors"' not in json.dumps(pipeline.state, default=str)  # nothing in dlt state


def test_a_row_whose_load_did_not_complete_never_moves_a_position(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    pipeline = dlt.pipeline(
        "positions", destination=dlt.destinations.duckdb(str(database)), dataset_name="approvalmax",
        pipelines_dir=str(tmp_path / "dlt"),
    )  # fmt: skip
    pages = {"c1": [bill("a", "2025-01-01T00:00:00Z")]}
    run(pipeline, pages)
    pages["c1"].append(bill("b", "2025-02-01T00:00:00Z"))
    run(pipeline, pages)
    assert read_positions(pipeline).cursors() == {"xero_bills": {"c1": "2025-02-01T00:00:00.000000Z"}}
    with duckdb.connect(str(database)) as connection:  # the second load as a kill -9 leaves it: no status 0 row
        connection.execute(
            "delete from approvalmax._dlt_loads where load_id = (select max(load_id) from approvalmax._dlt_loads)"
        )
    assert read_positions(pipeline).cursors() == {"xero_bills": {"c1": "2025-01-01T00:00:00.000000Z"}}
    other = dlt.pipeline(
        "another", destination=dlt.destinations.duckdb(str(database)), dataset_name="approvalmax",
        pipelines_dir=str(tmp_path / "dlt"),
    )  # fmt: skip
    assert read_positions(other).cursors() == {}  # each pipeline has its own, as with dlt state


class _Refusing:
    """An SQL client whose every statement fails with `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def make_qualified_table_name(self, name: str) -> str:
        return f"ds.{name}"

    def execute_sql(self, sql: str, *args: object) -> None:
        raise self.error


def test_a_warehouse_that_refuses_the_prune_only_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    from approvalmax_pipeline.pipelines.warehouse.faults import is_warehouse_fault
    from approvalmax_pipeline.sources.approvalmax.positions import prune_superseded

    refusing = _Refusing(RuntimeError("correlated subquery not supported\nmore detail"))
    prune_superseded(SimpleNamespace(pipeline_name="p"), refusing, fatal=is_warehouse_fault)  # type: ignore[arg-type]
    assert "could not delete superseded rows of _approvalmax_cursors: correlated subquery not supported" in caplog.text


def test_a_warehouse_gone_during_the_prune_goes_to_the_phase_retries(caplog: pytest.LogCaptureFixture) -> None:
    """Its connection is gone for the statements after the prune too: swallowing it would fail them."""
    from types import SimpleNamespace

    from approvalmax_pipeline.pipelines.warehouse.faults import is_warehouse_fault
    from approvalmax_pipeline.sources.approvalmax.positions import prune_superseded

    class OperationalError(Exception):  # psycopg2's class for a connection that failed
        pass

    gone = OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')
    with pytest.raises(OperationalError):
        prune_superseded(SimpleNamespace(pipeline_name="p"), _Refusing(gone), fatal=is_warehouse_fault)  # type: ignore[arg-type]
    assert "could not delete" not in caplog.text
