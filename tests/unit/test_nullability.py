"""Arrow fields get dlt's nullability from the hints, so dlt has no column hint difference to warn about."""

from __future__ import annotations

import pyarrow as pa

from approvalmax_pipeline.sources.approvalmax.nullability import with_hinted_nullability

TABLE = pa.table({"_dlt_id": ["a", "b"], "note": ["x", None], "key": ["k", "l"], "gap": ["g", None]})
HINTS = {
    "_dlt_id": {"name": "_dlt_id", "nullable": False},
    "note": {"name": "note", "nullable": True},
    "gap": {"name": "gap", "nullable": False},
}


def nullable(table: pa.Table) -> dict[str, bool]:
    return {field.name: field.nullable for field in table.schema}


def test_a_column_the_hints_make_not_null_is_not_nullable_in_arrow() -> None:
    assert nullable(with_hinted_nullability(TABLE, HINTS))["_dlt_id"] is False


def test_a_primary_keys_columns_are_not_nullable_though_no_hint_says_so() -> None:
    assert nullable(with_hinted_nullability(TABLE, HINTS, primary_key=("key",)))["key"] is False


def test_a_column_holding_a_null_stays_nullable_whatever_the_hint() -> None:
    assert nullable(with_hinted_nullability(TABLE, HINTS))["gap"] is True


def test_other_columns_and_the_values_are_left_as_they_are() -> None:
    marked = with_hinted_nullability(TABLE, HINTS)
    assert nullable(marked)["note"] is True and marked.to_pylist() == TABLE.to_pylist()


def test_a_table_that_already_agrees_is_returned_as_it_is() -> None:
    agreed = with_hinted_nullability(TABLE, {})
    assert agreed is TABLE
