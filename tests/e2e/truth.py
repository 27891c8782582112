"""Compare the warehouse with the sandbox's ground truth (its /_sandbox/export)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from approvalmax_pipeline.sources.approvalmax.settings import DOCUMENT_TYPES
from approvalmax_pipeline.sources.approvalmax.timestamps import parse_timestamp

from ..conftest import Workspace

CHILD_LISTS = {
    "lineItems": "line_items",
    "events": "events",
    "attachments": "attachments",
    "additionalInformation": "additional_information",
}


def export(workspace: Workspace) -> dict[str, dict[str, list[dict[str, Any]]]]:
    return workspace.admin("GET", "export")  # type: ignore[no-any-return]


def expected_counts(truth: dict[str, dict[str, list[dict[str, Any]]]]) -> Counter[tuple[str, str]]:
    """(table, company) -> rows, derived from the raw documents."""
    counts: Counter[tuple[str, str]] = Counter()
    for company, by_type in truth.items():
        for document_type in DOCUMENT_TYPES:
            for doc in by_type.get(document_type.path, []):
                table = document_type.resource
                counts[(table, company)] += 1
                for field, child in CHILD_LISTS.items():
                    items = doc.get(field) or []
                    if items:
                        counts[(f"{table}__{child}", company)] += len(items)
                    if field == "lineItems":
                        tracking = sum(len(line.get("tracking") or []) for line in items)
                        if tracking:
                            counts[(f"{table}__line_items__tracking", company)] += tracking
    return counts


def document_tables(workspace: Workspace, dataset: str = "approvalmax") -> list[str]:
    """The document tables and their children, lower case (Snowflake keeps names in upper case;
    unquoted, they resolve on every warehouse)."""
    names = [
        str(row[0]).lower()
        for row in workspace.query(
            f"select table_name from information_schema.tables where lower(table_schema) = '{dataset}'"
        )
    ]
    return [name for name in names if name.startswith(("xero_", "standalone_"))]


def warehouse_counts(workspace: Workspace, dataset: str = "approvalmax") -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    tables = document_tables(workspace, dataset)
    for table in tables:
        root = table.split("__")[0]
        if table == root:
            sql = f"select company_id, count(*) from {dataset}.{table} where deleted_at is null group by 1"
        else:
            sql = (
                f"select r.company_id, count(*) from {dataset}.{table} c "
                f"join {dataset}.{root} r on c._dlt_root_id = r._dlt_id where r.deleted_at is null group by 1"
            )
        for company, count in workspace.query(sql):
            counts[(table, company)] = count
    return counts


def status_text(value: Any) -> str:
    if isinstance(value, dict):
        return value["name"][0].lower() + value["name"][1:]
    return str(value)


def assert_documents_equal(workspace: Workspace, truth: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    """Every live document present once, with the latest status, total and modifiedAt (rows marked
    deleted are the sandbox's deleted documents: tests/e2e/test_reconcile.py checks those)."""
    for document_type in DOCUMENT_TYPES:
        table = document_type.resource
        has_total = document_type.path != "standalone/documents"
        rows = workspace.query(
            f"select company_id, request_id, request_status, modified_at, "
            f"{'total' if has_total else 'null'} from approvalmax.{table} where deleted_at is null"
        )
        loaded = {(r[0], r[1]): r for r in rows}
        assert len(loaded) == len(rows), f"duplicate documents in {table}"
        expected = {(c, d["requestId"]): d for c, by_type in truth.items() for d in by_type.get(document_type.path, [])}
        assert set(loaded) == set(expected), f"{table}: documents differ"
        for key, doc in expected.items():
            row = loaded[key]
            assert row[2] == status_text(doc["requestStatus"]), (table, key)
            assert row[3] == parse_timestamp(doc["modifiedAt"]), (table, key)
            if has_total:
                assert row[4] == doc["total"], (table, key)


def assert_no_orphans_or_duplicates(workspace: Workspace, dataset: str = "approvalmax") -> None:
    """Every child row hangs off an existing parent and root; every document key is unique."""
    tables = document_tables(workspace, dataset)
    for table in tables:
        if "__" not in table:
            duplicates = workspace.query(
                f"select count(*) from (select company_id, request_id from {dataset}.{table} "
                "group by 1, 2 having count(*) > 1) d"
            )
            assert duplicates == [(0,)], f"duplicate documents in {table}"
            continue
        root, parent = table.split("__")[0], table.rsplit("__", 1)[0]
        orphans = workspace.query(
            f"select count(*) from {dataset}.{table} c where not exists (select 1 from {dataset}.{parent} p "
            "where p._dlt_id = c._dlt_parent_id) or not exists "
            f"(select 1 from {dataset}.{root} r where r._dlt_id = c._dlt_root_id)"
        )
        assert orphans == [(0,)], f"orphan rows in {table}"


def assert_equals_sandbox(workspace: Workspace) -> None:
    """No missing rows, no duplicates, latest values, children consistent with parents."""
    truth = export(workspace)
    assert warehouse_counts(workspace) == expected_counts(truth)
    assert_documents_equal(workspace, truth)
    assert_no_orphans_or_duplicates(workspace)
