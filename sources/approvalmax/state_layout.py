"""The layout of the source's per-company positions, owned here: per resource and company id, the
`cursor` (the next run's position), the last sweep (when, and in which load its list was read whole),
`loaded_versions` (versions.py) and `not_applicable` (the company does not have this type).

They live in the dataset's `_approvalmax_cursors` table (positions.py reads and writes it): one row
per pipeline, resource and company each time that company's position changes, loaded in the same
load package as the documents. While a resource runs, its positions are one dict in the layout the
previous version kept in dlt resource state (`cursors`, `sweeps`, `loaded_versions`,
`not_applicable`), which `ResourceState` reads and writes by company; `changed_rows` turns what moved
into the table's rows. A warehouse written by the previous version still has that dict in dlt state:
`merge_legacy` reads it, and the first run of each resource moves it into the table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .content_digest import is_digest

SOURCE_NAME = "approvalmax"  # the dlt source's name, and its key in the pipeline state

CURSORS = "cursors"
SWEEPS = "sweeps"
LOADED_VERSIONS = "loaded_versions"
NOT_APPLICABLE = "not_applicable"
LEGACY_KEYS = (CURSORS, SWEEPS, LOADED_VERSIONS, NOT_APPLICABLE)

POSITIONS_TABLE = "_approvalmax_cursors"
# The table's columns, each row one company's whole position in one resource of one pipeline.
POSITION_COLUMNS: dict[str, str] = {
    "pipeline_name": "text",
    "resource": "text",
    "company_id": "text",
    # a document type's: the timestamp as dlt state held it (timestamps.format_timestamp);
    # companies' and user_profiles': the digest of the answer last loaded (content_digest.py)
    "cursor_value": "text",
    "swept_at": "text",
    "sweep_load_id": "text",
    "loaded_versions": "text",  # JSON: request id -> modifiedAt
    "not_applicable": "bool",
}


@dataclass(frozen=True)
class Position:
    """One company's position in one resource, as one row of the table holds it."""

    cursor: str | None = None
    swept_at: str | None = None
    sweep_load_id: str | None = None
    loaded_versions: str | None = None  # JSON text, parsed only by the resource that uses it
    not_applicable: bool = False

    def versions(self) -> dict[str, str]:
        return dict(json.loads(self.loaded_versions)) if self.loaded_versions else {}


class ResourceState:
    """One resource's positions as one dict (the layout above), read and written by company."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def cursor(self, company_id: str) -> str | None:
        value = self._state.get(CURSORS, {}).get(company_id)
        return str(value) if value is not None else None

    def set_cursor(self, company_id: str, cursor: str) -> None:
        self._state.setdefault(CURSORS, {})[company_id] = cursor

    def last_sweep_at(self, company_id: str) -> str | None:
        value = self._state.get(SWEEPS, {}).get(company_id, {}).get("at")
        return str(value) if value is not None else None

    def record_sweep(self, company_id: str, at: str, load_id: str) -> None:
        self._state.setdefault(SWEEPS, {})[company_id] = {"at": at, "load_id": load_id}

    def loaded_versions(self) -> dict[str, Any]:
        """The dict versions.LoadedVersions keeps its entries in (made on first use)."""
        versions: dict[str, Any] = self._state.setdefault(LOADED_VERSIONS, {})
        return versions

    def is_not_applicable(self, company_id: str) -> bool:
        return company_id in self._state.get(NOT_APPLICABLE, [])

    def set_not_applicable(self, company_id: str, absent: bool) -> None:
        companies: list[str] = self._state.setdefault(NOT_APPLICABLE, [])
        if absent and company_id not in companies:
            companies.append(company_id)
        elif not absent and company_id in companies:
            companies.remove(company_id)


def companies_in(state: Mapping[str, Any]) -> set[str]:
    """Every company a resource's dict holds anything for."""
    found: set[str] = set(state.get(NOT_APPLICABLE, []))
    for key in (CURSORS, SWEEPS, LOADED_VERSIONS):
        found.update(state.get(key, {}))
    return found


def position_of(state: Mapping[str, Any], company_id: str) -> Position:
    """A company's position out of a resource's dict (versions as canonical JSON, so equal ones compare equal)."""
    sweep = state.get(SWEEPS, {}).get(company_id) or {}
    versions = state.get(LOADED_VERSIONS, {}).get(company_id)
    cursor = state.get(CURSORS, {}).get(company_id)
    return Position(
        cursor=str(cursor) if cursor is not None else None,
        swept_at=sweep.get("at"),
        sweep_load_id=sweep.get("load_id"),
        loaded_versions=json.dumps(versions, sort_keys=True, separators=(",", ":")) if versions else None,
        not_applicable=company_id in state.get(NOT_APPLICABLE, []),
    )


def put_position(state: dict[str, Any], company_id: str, position: Position) -> None:
    """Write a company's position into a resource's dict, replacing whatever it held for it."""
    for key in (CURSORS, SWEEPS, LOADED_VERSIONS):
        if company_id in state.get(key, {}):
            del state[key][company_id]
    if company_id in state.get(NOT_APPLICABLE, []):
        state[NOT_APPLICABLE].remove(company_id)
    _put_new(state, company_id, position)


def state_of(positions: Mapping[str, Position]) -> dict[str, Any]:
    """A resource's dict from its companies' positions."""
    state: dict[str, Any] = {}
    for company_id, position in positions.items():
        _put_new(state, company_id, position)
    return state


def _put_new(state: dict[str, Any], company_id: str, position: Position) -> None:
    """`put_position` for a company the dict does not hold yet."""
    if position.cursor is not None:
        state.setdefault(CURSORS, {})[company_id] = position.cursor
    if position.swept_at is not None or position.sweep_load_id is not None:
        state.setdefault(SWEEPS, {})[company_id] = {"at": position.swept_at, "load_id": position.sweep_load_id}
    if position.loaded_versions:
        state.setdefault(LOADED_VERSIONS, {})[company_id] = position.versions()
    if position.not_applicable:
        state.setdefault(NOT_APPLICABLE, []).append(company_id)


# A company's position as the resource's dict holds it, to compare: (cursor, swept at, sweep load
# id, versions, not applicable). Cheaper than a Position, whose versions are canonical JSON, since a
# run over a thousand companies compares every one of them and writes a row for few.
Snapshot = tuple[str | None, Any, Any, dict[str, Any] | None, bool]


def snapshot(state: Mapping[str, Any]) -> dict[str, Snapshot]:
    """company -> its position as it is now, to compare with after the resource ran."""
    absent = set(state.get(NOT_APPLICABLE, []))
    return {company_id: _snapshot_of(state, company_id, absent) for company_id in companies_in(state)}


def _snapshot_of(state: Mapping[str, Any], company_id: str, absent: set[str]) -> Snapshot:
    sweep = state.get(SWEEPS, {}).get(company_id) or {}
    versions = state.get(LOADED_VERSIONS, {}).get(company_id)
    cursor = state.get(CURSORS, {}).get(company_id)
    return (
        str(cursor) if cursor is not None else None,
        sweep.get("at"),
        sweep.get("load_id"),
        dict(versions) if versions else None,  # a copy: the run may change the dict in place
        company_id in absent,
    )


NO_POSITION: Snapshot = (None, None, None, None, False)


def changed_rows(
    pipeline_name: str, resource: str, before: Mapping[str, Snapshot], state: Mapping[str, Any], every: bool = False
) -> list[dict[str, Any]]:
    """The table's rows for the companies whose position differs from `before` (all of them: `every`)."""
    rows = []
    absent = set(state.get(NOT_APPLICABLE, []))
    for company_id in sorted(companies_in(state) | set(before)):
        if every or _snapshot_of(state, company_id, absent) != before.get(company_id, NO_POSITION):
            rows.append(position_row(pipeline_name, resource, company_id, position_of(state, company_id)))
    return rows


def position_row(pipeline_name: str, resource: str, company_id: str, position: Position) -> dict[str, Any]:
    return {
        "pipeline_name": pipeline_name,
        "resource": resource,
        "company_id": company_id,
        "cursor_value": position.cursor,
        "swept_at": position.swept_at,
        "sweep_load_id": position.sweep_load_id,
        "loaded_versions": position.loaded_versions,
        "not_applicable": position.not_applicable,
    }


@dataclass
class Positions:
    """resource -> company -> position, as the next run starts from: the table's newest completed
    rows, with what dlt state still holds from the previous version laid over them."""

    stored: dict[str, dict[str, Position]]

    def resource_state(self, resource: str) -> dict[str, Any]:
        """The resource's dict for a run to read and write (a copy: this object stays as read)."""
        return state_of(self.stored.get(resource, {}))

    def cursors(self) -> dict[str, dict[str, str]]:
        """resource -> company -> cursor, for the resources that have any (a document type's: the
        digests `companies` and `user_profiles` keep in the same column are no time to show)."""
        found = {
            resource: {company: p.cursor for company, p in companies.items() if p.cursor and not is_digest(p.cursor)}
            for resource, companies in self.stored.items()
        }
        return {resource: cursors for resource, cursors in found.items() if cursors}

    def sweep_loads(self, resources: Iterable[str]) -> dict[str, dict[str, str]]:
        """resource -> company -> load id of its last complete sweep."""
        found = {
            resource: {c: p.sweep_load_id for c, p in self.stored.get(resource, {}).items() if p.sweep_load_id}
            for resource in resources
        }
        return {resource: loads for resource, loads in found.items() if loads}


def position_from_row(row: Mapping[str, Any]) -> Position:
    return Position(
        cursor=row.get("cursor_value"),
        swept_at=row.get("swept_at"),
        sweep_load_id=row.get("sweep_load_id"),
        loaded_versions=row.get("loaded_versions"),
        not_applicable=bool(row.get("not_applicable")),
    )


def resource_states(pipeline_state: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    """resource -> its dlt resource state, from a whole pipeline state (`pipeline.state`)."""
    resources: Mapping[str, Mapping[str, Any]] = (
        pipeline_state.get("sources", {}).get(SOURCE_NAME, {}).get("resources", {})
    )
    return resources


def has_legacy(resource_state: Mapping[str, Any]) -> bool:
    """Whether a resource's dlt state still holds positions the previous version wrote there."""
    return any(key in resource_state for key in LEGACY_KEYS)


def merge_legacy(stored: dict[str, dict[str, Position]], pipeline_state: Mapping[str, Any]) -> Positions:
    """The table's positions with dlt state's laid over them, company by company.

    dlt state holds positions only when the previous version wrote them: this version empties a
    resource's dlt state in the same load that writes its rows, so what dlt state still holds for a
    company is newer than any row of it (a warehouse the previous version ran on again after this
    one, too)."""
    merged = {resource: dict(companies) for resource, companies in stored.items()}
    for resource, state in resource_states(pipeline_state).items():
        if has_legacy(state):
            companies = merged.setdefault(resource, {})
            for company_id in companies_in(state):
                companies[company_id] = position_of(state, company_id)
    return Positions(merged)
