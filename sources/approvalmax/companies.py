"""Which of the listed companies a run loads: one rule for the CLI, the DAG and the library."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Company:
    """One organisation as `/companies` lists it: its id as text, its name, and the whole record."""

    id: str
    name: str
    record: Mapping[str, Any]

    @classmethod
    def of(cls, record: Mapping[str, Any] | Company) -> Company:
        if isinstance(record, Company):
            return record
        return cls(str(record["companyId"]), str(record.get("name") or ""), record)


def companies_of(records: Iterable[Mapping[str, Any] | Company]) -> list[Company]:
    return [Company.of(record) for record in records]


def select_companies(listed: Sequence[Mapping[str, Any] | Company], wanted: Iterable[str] | None) -> list[Company]:
    """The companies to load, in the API's order; every named id must be one the token may read."""
    companies = companies_of(listed)
    wanted_ids = list(dict.fromkeys(wanted or ()))
    if not wanted_ids:
        return companies
    known = {company.id for company in companies}
    unknown = [cid for cid in wanted_ids if cid not in known]
    if unknown:
        raise ConfigError(
            f"unknown company {', '.join(unknown)}: not among the {len(known)} organisations this "
            "connection can read (`approvalmax companies` lists them)"
        )
    return [company for company in companies if company.id in wanted_ids]
