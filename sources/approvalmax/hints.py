"""dlt table hints of the document tables, the same for both sinks: keys, declared types, dedup order."""

from __future__ import annotations

from collections.abc import Sequence

from dlt.common.schema.typing import TColumnSchema, TTableSchemaColumns

from .settings import ColumnTypes, DocumentType, TDataType

DOCUMENT_KEY = ("company_id", "request_id")
DELETED_AT = "deleted_at"
KEY_TYPES: dict[str, TDataType] = {"company_id": "text", "request_id": "text"}


def column_hints(types: ColumnTypes) -> TTableSchemaColumns:
    hints: TTableSchemaColumns = {}
    for name, kind in types.items():
        column: TColumnSchema = {"name": name, "data_type": kind}
        hints[name] = column
    return hints


def root_columns(document_type: DocumentType) -> TTableSchemaColumns:
    columns = dict(column_hints(document_type.columns))
    # Within one load the newest version of a document wins.
    columns["modified_at"] = {**columns["modified_at"], "dedup_sort": "desc"}
    # Set after a sweep to when the document was found gone (pipelines/warehouse/deletions.py); a load of the
    # document writes it as NULL again, so one that comes back is live.
    columns[DELETED_AT] = {"name": DELETED_AT, "data_type": "timestamp", "nullable": True}
    return columns


def child_table(document_type: DocumentType, path: Sequence[str]) -> str:
    """dlt's name of a nested table: parent__child."""
    return "__".join((document_type.resource, *path))


def declared_types(document_type: DocumentType) -> dict[str, ColumnTypes]:
    """Every table of a document type with the column types fixed up front."""
    declared = {document_type.resource: {**KEY_TYPES, **document_type.columns}}
    for path, types in document_type.children.items():
        declared[child_table(document_type, path)] = types
    return declared
