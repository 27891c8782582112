"""Documents to Arrow tables, unnested the way dlt's row normaliser would, at a fraction of its cost.

dlt loads Arrow tables without per-row normalisation, but only for tables it is handed, so
this module does the unnesting itself: snake_case names, nested objects flattened into
`parent__child` columns, lists into child tables `table__field` linked by `_dlt_parent_id`,
`_dlt_list_idx` and `_dlt_root_id`, and root rows carrying `_dlt_id` and `_dlt_load_id`. The
tables, columns and types equal what dlt's normaliser makes of the same rows (a test compares
both), so dlt's merge replaces a changed document's child rows exactly as before.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.common.schema.typing import TTableSchemaColumns

from ..nullability import with_hinted_nullability
from ..records import flatten_status, is_time_field, with_company
from ..settings import ColumnTypes
from .columns import ARROW_TYPES, python_column, rows_columns, time_column, with_variants
from .pages import (
    ArrowPage,
    ColumnArrays,
    NotArrowReady,
    StagedPage,
    is_plain_scalar,
    list_positions,
    status_text,
)

_NAMING = NamingConvention()
__all__ = ["ArrowDocuments", "nested_hints", "root_hints", "with_hinted_nullability"]

ROW_KEY = "_dlt_id"
LOAD_ID = "_dlt_load_id"
PARENT_KEY = "_dlt_parent_id"
ROOT_KEY = "_dlt_root_id"
LIST_INDEX = "_dlt_list_idx"
SCALAR_VALUE = "value"  # dlt's column for a list of plain values


def root_hints() -> TTableSchemaColumns:
    """dlt's own columns on a root table, with the hints its normaliser gives them."""
    return {
        ROW_KEY: {"name": ROW_KEY, "data_type": "text", "nullable": False, "unique": True, "row_key": True},
        LOAD_ID: {"name": LOAD_ID, "data_type": "text", "nullable": False},
    }


def nested_hints() -> TTableSchemaColumns:
    """dlt's own columns on a nested table, with the hints its normaliser gives them."""
    return {
        ROOT_KEY: {"name": ROOT_KEY, "data_type": "text", "nullable": False, "root_key": True},
        PARENT_KEY: {"name": PARENT_KEY, "data_type": "text", "nullable": False, "parent_key": True},
        LIST_INDEX: {"name": LIST_INDEX, "data_type": "bigint", "nullable": False},
        ROW_KEY: {"name": ROW_KEY, "data_type": "text", "nullable": False, "unique": True, "row_key": True},
    }


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


class RowIds:
    """Unique row ids: a random 72-bit prefix per builder and a counter, 20 characters."""

    def __init__(self) -> None:
        self._prefix = base64.urlsafe_b64encode(os.urandom(9)).decode()
        self._count = itertools.count()

    def __next__(self) -> str:
        return f"{self._prefix}{next(self._count):08x}"

    def take(self, count: int) -> pa.Array:
        """`count` ids at once, as `next` makes them, built as bytes with numpy (a full load takes
        200,000 of them; a Python string each cost a tenth of the extract thread)."""
        start = next(self._count)
        self._count = itertools.count(start + count)
        if start + count > 0xFFFFFFFF:  # past eight hex digits the ids grow longer, as next() makes them
            return pa.array([f"{self._prefix}{number:08x}" for number in range(start, start + count)], pa.string())
        numbers = np.arange(start, start + count, dtype=np.uint64)
        shifts = np.arange(28, -4, -4, dtype=np.uint64)  # eight hex digits, most significant first
        digits = _HEX[((numbers[:, None] >> shifts) & np.uint64(0xF)).astype(np.intp)]
        prefix = np.frombuffer(self._prefix.encode(), dtype=np.uint8)
        chars = np.concatenate([np.broadcast_to(prefix, (count, prefix.size)), digits], axis=1)
        width = chars.shape[1]
        offsets = pa.py_buffer(np.arange(0, (count + 1) * width, width, dtype=np.int32).tobytes())
        return pa.StringArray.from_buffers(count, offsets, pa.py_buffer(np.ascontiguousarray(chars).tobytes()))


class _Rows:
    """One table's rows of the current batch, and every column name they use (first-seen order)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.columns: dict[str, None] = {}
        self.timed: set[str] = set()  # columns of time fields, left as text until flush()
        self.chunks: list[ColumnArrays] = []  # pages unnested by Arrow
        # Columns that saw floats or booleans: Arrow would quietly turn 1.5 into 1 in a bigint
        # column and True into 1.0 in a double one, where dlt makes a variant column.
        self.floats: set[str] = set()
        self.bools: set[str] = set()
        self._known: set[str] = set()

    def fits(self, column: str, kind: pa.DataType) -> bool:
        """Whether Arrow can convert the column without a silent coercion dlt would not make."""
        if pa.types.is_integer(kind):
            return column not in self.floats and column not in self.bools
        if pa.types.is_floating(kind):
            return column not in self.bools
        return True

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if not self._known.issuperset(row):
            for name in row:
                if name not in self._known:
                    self._known.add(name)
                    self.columns[name] = None


class ArrowDocuments:
    """Collects one document type's rows into per-table batches and hands them out as Arrow tables.

    Column types come from `declared` (by table), then from what the table already has in dlt's
    schema, then from the first batch that has values; a value that does not fit its column's
    type goes to a variant column `name__v_<type>`, as dlt does.
    """

    def __init__(
        self,
        root_table: str,
        declared: Mapping[str, ColumnTypes],
        existing: Mapping[str, TTableSchemaColumns] | None = None,
        load_id: str = "",
    ) -> None:
        self.root_table = root_table
        self.load_id = load_id
        self._types: dict[str, dict[str, pa.DataType]] = {}
        for table, columns in (existing or {}).items():
            kinds = self._types.setdefault(table, {})
            for name, column in columns.items():
                kind = ARROW_TYPES.get(column.get("data_type"))  # type: ignore[arg-type]
                if kind is not None:
                    kinds[name] = kind
        for table, types in declared.items():
            self._types.setdefault(table, {}).update({name: ARROW_TYPES[kind] for name, kind in types.items()})
        self._tables: dict[str, _Rows] = {}
        self._parents: dict[str, str] = {}
        self._names: dict[str, tuple[str, bool]] = {}  # API key -> (column, is a time field)
        self._ids = RowIds()
        self.documents = 0  # root rows in the current batch

    # --- rows -------------------------------------------------------------------------------

    def add(self, document: Mapping[str, Any], company_id: str, counts: Counter[str]) -> None:
        """Add one API document (as parsed from JSON) of `company_id`; count its rows per table."""
        rows = self._rows(self.root_table)  # first, so parents come before children in flush()
        row_id = next(self._ids)
        row: dict[str, Any] = {}
        self._fields(self.root_table, rows, with_company(document, company_id), row, "", row_id, row_id, counts)
        row[ROW_KEY] = row_id
        row[LOAD_ID] = self.load_id
        rows.append(row)
        counts[self.root_table] += 1
        self.documents += 1

    def _rows(self, table: str) -> _Rows:
        rows = self._tables.get(table)
        if rows is None:
            rows = self._tables[table] = _Rows()
        return rows

    def _fields(
        self,
        table: str,
        rows: _Rows,
        source: Mapping[str, Any],
        row: dict[str, Any],
        prefix: str,
        row_id: str,
        root_id: str,
        counts: Counter[str],
    ) -> None:
        # The hot loop of a load: exact type checks (JSON gives no subclasses), names cached.
        names = self._names
        for key, value in source.items():
            if value is None:
                continue
            named = names.get(key)
            if named is None:
                named = names[key] = (_NAMING.normalize_identifier(key), is_time_field(key))
            column = prefix + named[0] if prefix else named[0]
            kind = type(value)
            if kind is dict:
                if key == "requestStatus":
                    row[column] = flatten_status(value)
                else:
                    self._fields(table, rows, value, row, column + "__", row_id, root_id, counts)
            elif kind is list:
                if value:
                    self._children(f"{table}__{column}", table, value, row_id, root_id, counts)
            else:
                if kind is str:
                    if named[1]:
                        rows.timed.add(column)
                elif kind is float:
                    rows.floats.add(column)
                elif kind is bool:
                    rows.bools.add(column)
                row[column] = value

    def _children(
        self,
        table: str,
        parent: str,
        items: Sequence[Any],
        parent_id: str,
        root_id: str,
        counts: Counter[str],
    ) -> None:
        self._parents[table] = parent
        rows = self._rows(table)
        ids = self._ids
        for index, item in enumerate(items):
            child_id = next(ids)
            row: dict[str, Any] = {}
            if type(item) is dict:
                self._fields(table, rows, item, row, "", child_id, root_id, counts)
            elif item is not None:
                row[SCALAR_VALUE] = json.dumps(item) if isinstance(item, list | dict) else item
            row[ROOT_KEY] = root_id
            row[PARENT_KEY] = parent_id
            row[LIST_INDEX] = index
            row[ROW_KEY] = child_id
            rows.append(row)
        counts[table] += len(items)

    # --- pages unnested by Arrow ------------------------------------------------------------

    def add_page(self, page: ArrowPage, company_id: str, counts: Counter[str]) -> bool:
        """Add a page parsed by Arrow; False (and nothing added) when it must take the Python path."""
        documents = page.documents
        if len(documents) == 0:
            return True
        staged = StagedPage({}, {}, {}, Counter())
        row_ids = self._ids.take(len(documents))
        try:
            columns = self._page_columns(self.root_table, documents, "", row_ids, row_ids, staged)
        except NotArrowReady:
            return False
        # records.with_company, vectorised
        company = columns.get("company_id")
        if company is None or not pa.types.is_string(company.type):
            if company is not None and company.null_count < len(company):
                return False
            columns["company_id"] = pa.array([company_id] * len(documents), type=pa.string())
        else:
            missing = pc.fill_null(pc.equal(company, ""), True)
            columns["company_id"] = pc.if_else(missing, company_id, company)
        columns[ROW_KEY] = row_ids
        columns[LOAD_ID] = pa.array([self.load_id] * len(documents), type=pa.string())
        staged.counts[self.root_table] += len(documents)
        # Commit: the root first, so parents come before children in flush().
        self._rows(self.root_table).chunks.append(columns)
        self._rows(self.root_table).timed.update(staged.timed.get(self.root_table, ()))
        for table, arrays in staged.tables.items():
            rows = self._rows(table)
            rows.chunks.append(arrays)
            rows.timed.update(staged.timed.get(table, ()))
        self._parents.update(staged.parents)
        counts.update(staged.counts)
        self.documents += len(documents)
        return True

    def _column_name(self, key: str) -> tuple[str, bool]:
        named = self._names.get(key)
        if named is None:
            named = self._names[key] = (_NAMING.normalize_identifier(key), is_time_field(key))
        return named

    def _page_columns(
        self,
        table: str,
        struct: pa.StructArray,
        prefix: str,
        row_ids: pa.Array,
        root_ids: pa.Array,
        staged: StagedPage,
        columns: ColumnArrays | None = None,
    ) -> ColumnArrays:
        """The struct's fields as `table`'s columns; nested objects flattened, lists to child tables."""
        columns = {} if columns is None else columns
        for field, values in zip(struct.type, struct.flatten(), strict=True):
            name, timed = self._column_name(field.name)
            column = prefix + name
            kind = field.type
            if pa.types.is_null(kind):
                continue
            if pa.types.is_struct(kind):
                if field.name == "requestStatus":
                    columns[column] = status_text(values)
                else:
                    self._page_columns(table, values, column + "__", row_ids, root_ids, staged, columns)
            elif pa.types.is_list(kind):
                self._list_table(f"{table}__{column}", table, values, row_ids, root_ids, staged)
            elif is_plain_scalar(kind):
                if timed and pa.types.is_string(kind):
                    staged.timed.setdefault(table, set()).add(column)
                columns[column] = values
            else:
                raise NotArrowReady(f"{field.name} is {kind}")
        return columns

    def _list_table(
        self,
        table: str,
        parent: str,
        lists: pa.ListArray,
        parent_ids: pa.Array,
        root_ids: pa.Array,
        staged: StagedPage,
    ) -> None:
        values = lists.flatten()
        if len(values) == 0:
            return
        parents = pc.list_parent_indices(lists)
        ids = self._ids.take(len(values))
        staged.parents[table] = parent
        columns: ColumnArrays = {}
        staged.tables[table] = columns  # before any grandchild, so parents come first
        item_roots = root_ids.take(parents)
        if pa.types.is_struct(values.type):
            if values.null_count:
                raise NotArrowReady(f"{table} has null items")
            self._page_columns(table, values, "", ids, item_roots, staged, columns)
        elif is_plain_scalar(values.type):
            columns[SCALAR_VALUE] = values
        elif not pa.types.is_null(values.type):
            raise NotArrowReady(f"{table} holds {values.type}")
        columns[ROOT_KEY] = item_roots
        columns[PARENT_KEY] = parent_ids.take(parents)
        columns[LIST_INDEX] = list_positions(lists, parents)
        columns[ROW_KEY] = ids
        staged.counts[table] += len(values)

    # --- batches ----------------------------------------------------------------------------

    def parent_of(self, table: str) -> str | None:
        return self._parents.get(table)

    def flush(self) -> Iterator[tuple[str, pa.Table]]:
        """The batch so far as (table, Arrow table), parents before children; then start afresh."""
        tables, self._tables, self.documents = self._tables, {}, 0
        for table, rows in tables.items():
            parts = [self._chunk(table, chunk, rows.timed) for chunk in rows.chunks]
            if rows.rows:
                parts.append(self._arrow(table, rows))
            if len(parts) == 1:
                yield table, parts[0]
            elif parts:
                yield table, pa.concat_tables(parts, promote_options="default")

    def _chunk(self, table: str, chunk: ColumnArrays, timed: set[str]) -> pa.Table:
        """A page unnested by Arrow, each column cast to its table's type as the Python path would."""
        types = self._types.setdefault(table, {})
        arrays: ColumnArrays = {}
        for name, array in chunk.items():
            kind = types.get(name)
            if name in timed and (kind is None or pa.types.is_timestamp(kind)):
                arrays.update(time_column(name, array, types))
            elif kind is None:
                types[name] = array.type
                arrays[name] = array
            elif array.type == kind:
                arrays[name] = array
            elif pa.types.is_boolean(array.type) or pa.types.is_boolean(kind) or pa.types.is_timestamp(kind):
                # Arrow would make True 1.0 or "true"; dlt keeps booleans in a variant column.
                arrays.update(with_variants(name, array.to_pylist(), kind))
            else:
                try:
                    arrays[name] = array.cast(kind)  # safe: no truncation, no overflow
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    arrays.update(with_variants(name, array.to_pylist(), kind))
        return pa.table(arrays)

    def _arrow(self, table: str, rows: _Rows) -> pa.Table:
        types = self._types.setdefault(table, {})
        # Columns whose values all fit their type convert in one C++ pass over the rows; time
        # fields arrive as text and are parsed vectorised. The rest go value by value.
        fast: dict[str, pa.DataType] = {}
        as_time: set[str] = set()
        for name in rows.columns:
            kind = types.get(name)
            if name in rows.timed and (kind is None or pa.types.is_timestamp(kind)):
                fast[name] = pa.string()
                as_time.add(name)
            elif kind is not None and rows.fits(name, kind):
                fast[name] = kind
        converted = rows_columns(rows.rows, fast)
        arrays: ColumnArrays = {}
        for name in rows.columns:
            array = converted.get(name)
            values = array if array is not None else [row.get(name) for row in rows.rows]
            if name in as_time:
                arrays.update(time_column(name, values, types))
            elif array is not None:
                arrays[name] = array
            else:
                arrays.update(python_column(name, values, types))
        return pa.table(arrays)
