"""Compare two DuckDB warehouses table by table, ignoring only the random row ids dlt assigns."""

from __future__ import annotations

from typing import Any

import duckdb

ROW_IDS = {"_dlt_id", "_dlt_load_id", "_dlt_parent_id", "_dlt_root_id"}
# when a run saw a version: two warehouses loaded one after the other differ there by design
RUN_TIMES = {("request_versions", "first_seen_at")}


def columns(connection: duckdb.DuckDBPyConnection, dataset: str) -> dict[str, dict[str, str]]:
    """table -> column -> DuckDB type, for the data tables of `dataset`."""
    rows = connection.execute(
        "select c.table_name, c.column_name, c.data_type from information_schema.columns c "
        "join information_schema.tables t using (table_schema, table_name) "
        "where c.table_schema = ? and t.table_type = 'BASE TABLE' "
        # run bookkeeping (load ids, times) differs between any two warehouses
        "and c.table_name not like '\\_dlt%' escape '\\' "
        "and c.table_name not in ('run_history', 'approvalmax_sweep_checks', '_approvalmax_cursors')",
        [dataset],
    ).fetchall()
    tables: dict[str, dict[str, str]] = {}
    for table, column, kind in rows:
        tables.setdefault(table, {})[column] = kind
    return tables


def table_rows(
    connection: duckdb.DuckDBPyConnection, dataset: str, table: str, table_columns: dict[str, dict[str, str]]
) -> list[tuple[Any, ...]]:
    """Every row of `table`, keyed by its root document and the list positions above it."""
    chain = table.split("__")
    # Parent tables are the prefixes of the name that exist (a nested object adds no table).
    ancestors = [name for name in ("__".join(chain[:i]) for i in range(1, len(chain))) if name in table_columns]
    keys = ["t0.company_id", "t0.request_id"] if ancestors else []
    joins = []
    aliases = ["t0", *(f"t{i}" for i in range(1, len(ancestors))), "t"]
    for i, parent in enumerate(ancestors):
        alias = aliases[i]
        if i == 0:
            joins.append(f'{dataset}."{parent}" {alias}')
        else:
            joins.append(f'join {dataset}."{parent}" {alias} on {alias}._dlt_parent_id = {aliases[i - 1]}._dlt_id')
        if i > 0:
            keys.append(f"{alias}._dlt_list_idx")
    data = sorted(c for c in table_columns[table] if c not in ROW_IDS and (table, c) not in RUN_TIMES)
    select = ", ".join([*keys, *(f't."{c}"' for c in data)])
    if ancestors:
        joins.append(f'join {dataset}."{table}" t on t._dlt_parent_id = {aliases[len(ancestors) - 1]}._dlt_id')
        sql = f"select {select} from {' '.join(joins)}"
    else:
        sql = f'select {select} from {dataset}."{table}" t'
    return sorted(connection.execute(sql).fetchall(), key=repr)


def differences(left: str, right: str, dataset: str = "approvalmax") -> list[str]:
    """What differs between two warehouses: tables, columns with types, then rows."""
    with duckdb.connect(left, read_only=True) as a, duckdb.connect(right, read_only=True) as b:
        left_columns, right_columns = columns(a, dataset), columns(b, dataset)
        found: list[str] = []
        if left_columns.keys() != right_columns.keys():
            found.append(f"tables differ: {sorted(left_columns.keys() ^ right_columns.keys())}")
        for table in sorted(left_columns.keys() & right_columns.keys()):
            if left_columns[table] != right_columns[table]:
                diff = set(left_columns[table].items()) ^ set(right_columns[table].items())
                found.append(f"{table}: columns differ: {sorted(diff)}")
                continue
            left_rows = table_rows(a, dataset, table, left_columns)
            right_rows = table_rows(b, dataset, table, right_columns)
            if left_rows != right_rows:
                only_left = len(set(left_rows) - set(right_rows))
                only_right = len(set(right_rows) - set(left_rows))
                found.append(
                    f"{table}: {len(left_rows)} rows against {len(right_rows)}, "
                    f"{only_left} only left, {only_right} only right"
                )
        return found
