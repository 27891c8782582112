"""Sweep candidates: rows older than each company's own sweep load, queried in chunks of companies."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from approvalmax_pipeline.pipelines.warehouse import deletions
from approvalmax_pipeline.sources.approvalmax.settings import DOCUMENT_TYPES


class DuckSql:
    """The few SqlClientBase calls the check makes, on an in-memory DuckDB."""

    def __init__(self) -> None:
        self.connection = duckdb.connect()
        self.queries = 0

    def make_qualified_table_name(self, table: str) -> str:
        return table

    def execute_sql(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        self.queries += 1
        return self.connection.execute(sql.replace("%s", "?"), list(args)).fetchall()

    @contextlib.contextmanager
    def begin_transaction(self) -> Iterator[None]:
        yield


class NoDocuments:
    """An API that answers 404 for every document asked for by id."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def document(self, company: str, doc: Any, request_id: str) -> None:
        self.asked.append((company, request_id))


@pytest.mark.parametrize("per_query", [1, 2, 1000])
def test_candidates_are_older_than_their_own_companys_sweep(monkeypatch: pytest.MonkeyPatch, per_query: int) -> None:
    monkeypatch.setattr(deletions, "CANDIDATE_QUERY_COMPANIES", per_query)
    doc = DOCUMENT_TYPES[0]
    sql = DuckSql()
    sql.connection.execute(
        f"CREATE TABLE {doc.resource} (company_id VARCHAR, request_id VARCHAR, _dlt_load_id VARCHAR, "
        f"{deletions.DELETED_AT} TIMESTAMPTZ)"
    )
    sql.connection.execute("CREATE TABLE checks (resource VARCHAR, company_id VARCHAR, load_id VARCHAR)")
    rows = [
        ("a", "a-old", "100", None),  # a swept in load 200: gone
        ("a", "a-new", "200", None),  # listed by that sweep
        ("b", "b-old", "100", None),  # b swept in load 150: gone
        ("b", "b-between", "170", None),  # loaded after b's sweep: not a candidate of it
        ("c", "c-old", "100", None),  # c not pending
        ("a", "a-deleted", "100", "2026-01-01"),  # marked before
    ]
    sql.connection.executemany(f"INSERT INTO {doc.resource} VALUES (?, ?, ?, ?)", rows)
    api = NoDocuments()
    result = deletions.Deletions(hard=False)
    deletions._check_table(sql, "checks", doc, [], {"a": "200", "b": "150"}, api, False, result, deletions.SYSTEM_CLOCK)  # type: ignore[arg-type]
    assert sorted(api.asked) == [("a", "a-old"), ("b", "b-old")]
    assert result.marked == {"a": {doc.resource: 1}, "b": {doc.resource: 1}}
    marked = sql.connection.execute(f"SELECT request_id FROM {doc.resource} WHERE {deletions.DELETED_AT} IS NOT NULL")
    assert sorted(r[0] for r in marked.fetchall()) == ["a-deleted", "a-old", "b-old"]
