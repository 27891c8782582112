"""Python values and Arrow arrays to typed Arrow columns, with dlt's coercions.

A value that fits its column's type is converted, as dlt's normaliser would coerce it (a whole
number into a double column, a number's text into a number column); one that does not goes to a
variant column `name__v_<its type>`, as dlt makes it. Arrow's own conversions are only used
where they agree with dlt's: Arrow would quietly make 1.5 into 1 in a bigint column.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.data_types.typing import TDataType

from ..timestamps import DATE_ONLY_PATTERN, TIMESTAMP_PATTERN, parse_timestamp

ARROW_TYPES: dict[TDataType, pa.DataType] = {
    "text": pa.string(),
    "double": pa.float64(),
    "bigint": pa.int64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
_ZONE_PATTERN = r"(Z|[+-]\d{2}:?\d{2})$"


def rows_columns(rows: list[dict[str, Any]], fields: Mapping[str, pa.DataType]) -> dict[str, pa.Array]:
    """The `fields` of `rows` as arrays, converted in one pass; {} when some value does not fit."""
    if not fields:
        return {}
    try:
        struct = pa.array(rows, type=pa.struct(list(fields.items())))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return {}
    return dict(zip(fields, struct.flatten(), strict=True))


def timestamps(values: list[Any] | pa.Array) -> pa.Array | None:
    """Timestamp text to UTC microseconds in one vectorised pass; None when some value needs
    parse_timestamp's judgement (not text, not its pattern, or outside Arrow's nanosecond range)."""
    try:
        text = values if isinstance(values, pa.Array) else pa.array(values, type=pa.string())
        if not pc.all(pc.match_substring_regex(text, TIMESTAMP_PATTERN)).as_py():
            return None
        # A bare date is its midnight, and no zone means UTC, as in parse_timestamp.
        text = pc.replace_substring_regex(text, DATE_ONLY_PATTERN, r"\0T00:00:00")
        zoned = pc.match_substring_regex(text, _ZONE_PATTERN)
        text = pc.if_else(zoned, text, pc.binary_join_element_wise(text, "Z", ""))
        nanos = pc.cast(text, pa.timestamp("ns", tz="UTC"))
        return pc.cast(nanos, pa.timestamp("us", tz="UTC"), safe=False)  # digits past the 6th dropped
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None


def time_column(name: str, values: list[Any] | pa.Array, types: dict[str, pa.DataType]) -> dict[str, pa.Array]:
    """A time field's column: parsed vectorised when every value allows, else value by value."""
    stamps = timestamps(values)
    if stamps is not None:
        types[name] = stamps.type
        return {name: stamps}
    listed = values.to_pylist() if isinstance(values, pa.Array) else values
    return python_column(name, [parsed(value) for value in listed], types)


def python_column(name: str, values: list[Any], types: dict[str, pa.DataType]) -> dict[str, pa.Array]:
    """Python values as the column `name` (typed by the first values that have one, remembered in
    `types`) and its variant columns; {} when all are null: dlt makes no column of nulls either."""
    kind = types.get(name)
    if kind is not None:
        return with_variants(name, values, kind)
    inferred = infer(values)
    if inferred is None:
        return {}
    types[name] = inferred.type
    return {name: inferred}


def parsed(value: Any) -> Any:
    if isinstance(value, str):
        parsed = parse_timestamp(value)
        return value if parsed is None else parsed
    return value


def infer(values: list[Any]) -> pa.Array | None:
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        array = pa.array([None if v is None else _as_text(v) for v in values], type=pa.string())
    if pa.types.is_null(array.type):
        return None
    return array


def _as_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return value if isinstance(value, str) else json.dumps(value)


_VARIANT_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "bool"),
    (int, "bigint"),
    (float, "double"),
    (str, "text"),
    (datetime, "timestamp"),
)


def _variant_suffix(value: Any) -> str:
    for kind, name in _VARIANT_TYPES:
        if isinstance(value, kind):
            return name
    return "json"


def with_variants(name: str, values: list[Any], kind: pa.DataType) -> dict[str, pa.Array]:
    """The values that fit `kind` in `name`; each other value in `name__v_<its type>`, as dlt does."""
    fitting: list[Any] = []
    variants: dict[str, list[Any]] = {}
    for index, value in enumerate(values):
        coerced = _coerce(value, kind)
        fitting.append(coerced)
        if coerced is None and value is not None:
            column = variants.setdefault(f"{name}__v_{_variant_suffix(value)}", [None] * len(values))
            column[index] = value if not isinstance(value, dict | list) else json.dumps(value)
    arrays = {name: pa.array(fitting, type=kind)}
    for variant, variant_values in variants.items():
        arrays[variant] = pa.array(variant_values)
    return arrays


def _coerce(value: Any, kind: pa.DataType) -> Any:
    """`value` as a Python value of `kind`, or None when it does not fit (dlt's coercions)."""
    if value is None:
        return None
    try:
        if pa.types.is_floating(kind):
            return float(value) if not isinstance(value, bool) and isinstance(value, int | float | str) else None
        if pa.types.is_integer(kind):
            if isinstance(value, bool):
                return None
            if isinstance(value, float):
                return int(value) if value.is_integer() else None
            return int(value) if isinstance(value, int | str) else None
        if pa.types.is_boolean(kind):
            return value if isinstance(value, bool) else None
        if pa.types.is_timestamp(kind):
            if isinstance(value, datetime):
                return value
            return parse_timestamp(value) if isinstance(value, str) else None
        if pa.types.is_string(kind):
            if isinstance(value, str):
                return value
            return str(value) if isinstance(value, int | float) else None
    except (ValueError, OverflowError):
        return None
    return None
