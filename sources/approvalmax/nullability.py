"""Arrow fields marked not nullable where dlt's hints say so, so dlt has no hint difference to warn about."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
from dlt.common.schema.typing import TTableSchemaColumns


def with_hinted_nullability(table: pa.Table, hints: TTableSchemaColumns, primary_key: Sequence[str] = ()) -> pa.Table:
    """`table` with its fields marked not nullable where the hints say so (a primary key's columns
    are not nullable to dlt either) and no value is null: dlt compares an Arrow table's schema with
    its hints and, where they differ, keeps its hints and warns (several column hints were different)."""
    fields = []
    for field in table.schema:
        hint = hints.get(field.name)
        required = field.name in primary_key or (hint is not None and hint.get("nullable") is False)
        strict = required and table.column(field.name).null_count == 0
        fields.append(field.with_nullable(False) if strict else field)
    schema = pa.schema(fields, metadata=table.schema.metadata)
    return table if schema.equals(table.schema) else pa.Table.from_arrays(table.columns, schema=schema)
