"""What a run saw, company by company, for the run summary: rows, failures, types a company lacks."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .records import count_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompanyFailure:
    """One company's resource that could not be loaded this run."""

    company_id: str
    resource: str
    message: str


@dataclass
class RunReport:
    """Filled during extraction (on dlt's thread) for the run summary."""

    rows: dict[str, Counter[str]] = field(default_factory=dict)  # company -> table -> rows
    failures: list[CompanyFailure] = field(default_factory=list)
    # Document types a company does not have (404), reported the first run that sees them.
    not_applicable: list[CompanyFailure] = field(default_factory=list)
    documents: int = 0  # root rows so far, for a progress display
    # (company, resource) lists read whole and complete this run (sweeps.py)
    swept: list[tuple[str, str]] = field(default_factory=list)
    warned: set[str] = field(default_factory=set)
    history_seconds: float = 0.0  # spent making request_versions rows, part of extract (history.py)

    def warn_once(self, key: str, message: str) -> None:
        """One warning per run for what every page would otherwise repeat."""
        if key not in self.warned:
            self.warned.add(key)
            log.warning("%s", message)

    def count(self, company_id: str, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        count_rows(table, rows, self.rows.setdefault(company_id, Counter()))
        self.documents += len(rows)

    def counter(self, company_id: str) -> Counter[str]:
        return self.rows.setdefault(company_id, Counter())
