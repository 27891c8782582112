"""The layout of the source's dlt state, owned here: each resource's state holds, per company id,
`cursors` (the next run's position), `sweeps` (when and in which load its list was last read
whole), `loaded_versions` (versions.py) and `not_applicable` (companies without this type).
The source writes it through `ResourceState`; the warehouse side reads it with the functions below."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SOURCE_NAME = "approvalmax"  # the dlt source's name, and its key in the pipeline state

CURSORS = "cursors"
SWEEPS = "sweeps"
LOADED_VERSIONS = "loaded_versions"
NOT_APPLICABLE = "not_applicable"


class ResourceState:
    """One resource's dlt state dict, read and written by company."""

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


def resource_states(pipeline_state: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    """resource -> its state, from a whole pipeline state (`pipeline.state`)."""
    resources: Mapping[str, Mapping[str, Any]] = (
        pipeline_state.get("sources", {}).get(SOURCE_NAME, {}).get("resources", {})
    )
    return resources


def all_cursors(pipeline_state: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """resource -> company -> cursor, for the resources that have any."""
    return {
        name: dict(state.get(CURSORS, {}))
        for name, state in resource_states(pipeline_state).items()
        if state.get(CURSORS)
    }


def sweep_loads(pipeline_state: Mapping[str, Any], resources: Iterable[str]) -> dict[str, dict[str, str]]:
    """resource -> company -> load id of its last complete sweep."""
    states = resource_states(pipeline_state)
    return {
        resource: {company: sweep["load_id"] for company, sweep in sweeps.items() if sweep.get("load_id")}
        for resource in resources
        if (sweeps := states.get(resource, {}).get(SWEEPS))
    }
