"""Which of the listed companies a run loads: one rule for the CLI, the DAG and the library."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import ConfigError


def select_companies(companies: Sequence[Mapping[str, Any]], wanted: Iterable[str] | None) -> list[Mapping[str, Any]]:
    """The companies to load, in the API's order; every named id must be one the token may read."""
    wanted_ids = list(dict.fromkeys(wanted or ()))
    if not wanted_ids:
        return list(companies)
    known = {str(company.get("companyId")) for company in companies}
    unknown = [cid for cid in wanted_ids if cid not in known]
    if unknown:
        raise ConfigError(
            f"unknown company {', '.join(unknown)}: not among the {len(known)} organisations this "
            "connection can read (`approvalmax companies` lists them)"
        )
    return [company for company in companies if str(company.get("companyId")) in wanted_ids]
