"""`--json`: one JSON object on stdout per command, in the schemas of pipelines/json_schemas/.

Each object names its schema (`"schema": "approvalmax.run/1"`); a new field keeps the number,
a renamed or removed one bumps it. Programs read these instead of the tables people read.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from approvalmax_pipeline.pipelines.operations.doctor import Check
from approvalmax_pipeline.pipelines.run import RunResult
from approvalmax_pipeline.sources.approvalmax.companies import Company


def emit(document: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, sort_keys=False) + "\n")
    sys.stdout.flush()


def run_document(result: RunResult, exit_code: int) -> dict[str, Any]:
    names = {c.id: c.name for c in result.companies}
    return {
        "schema": "approvalmax.run/1",
        "exit_code": exit_code,
        "status": "failed" if result.failed else "ok",
        "kind": "backfill" if result.backfill else "load",
        "destination": result.destination,
        "dataset": result.dataset,
        "pipeline": result.pipeline,
        "duration_seconds": round(result.duration, 3),
        "phases": result.phases,
        "companies": [
            {
                "company_id": cid,
                "name": names[cid],
                "rows": dict(sorted(result.report.rows.get(cid, {}).items())),
            }
            for cid in names
        ],
        "tables": dict(sorted(result.table_rows.items())),
        "requests": result.requests,
        "retries": result.retries,
        "throttled": result.throttled,
        "token_refreshes": result.token_refreshes,
        "failures": [failure_document(f) for f in result.report.failures],
        "not_applicable": [failure_document(f) for f in result.report.not_applicable],
        "views": list(result.views),
        "sweep": sweep_document(result),
    }


def sweep_document(result: RunResult) -> dict[str, Any]:
    deletions = result.deletions
    return {
        "lists": [{"company_id": company, "resource": resource} for company, resource in result.swept],
        "requests": result.sweep_requests,
        "checked": deletions.checked,
        "not_listed": deletions.candidates,
        "deleted": [
            {"company_id": company, "resource": resource, "documents": count}
            for company, by_resource in sorted(deletions.marked.items())
            for resource, count in sorted(by_resource.items())
        ],
        "still_served": deletions.still_served,
        "unanswered": deletions.unanswered,
        "mode": "hard" if deletions.hard else "soft",
    }


def failure_document(failure: Any) -> dict[str, str]:
    return {"company_id": failure.company_id, "resource": failure.resource, "message": failure.message}


def state_document(pipeline: str, cursors: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    return {
        "schema": "approvalmax.state/1",
        "pipeline": pipeline,
        "cursors": [
            {"resource": resource, "company_id": company_id, "cursor": cursor}
            for resource in sorted(cursors)
            for company_id, cursor in sorted(cursors[resource].items())
        ],
    }


def companies_document(companies: Sequence[Company]) -> dict[str, Any]:
    return {
        "schema": "approvalmax.companies/1",
        "companies": [{"company_id": c.id, "name": c.name} for c in companies],
    }


def doctor_document(checks: Sequence[Check], requests: int, budget: int, exit_code: int) -> dict[str, Any]:
    return {
        "schema": "approvalmax.doctor/1",
        "exit_code": exit_code,
        "requests": requests,
        "request_budget": budget,
        "checks": [
            {"assumption": c.assumption, "result": c.result, "seen": c.detail, "if_it_differs": c.fix} for c in checks
        ],
    }


def error_document(command: str, exit_code: int, message: str) -> dict[str, Any]:
    """What a failed command prints with --json (the same line also goes to stderr)."""
    return {"schema": "approvalmax.error/1", "command": command, "exit_code": exit_code, "error": message}


def status_document(
    freshness: Sequence[Any], failures: Sequence[Any], max_age_hours: float, exit_code: int
) -> dict[str, Any]:
    return {
        "schema": "approvalmax.status/1",
        "exit_code": exit_code,
        "max_age_hours": max_age_hours,
        "resources": [
            {
                "company_id": f.company_id,
                "resource": f.resource,
                "last_success_at": f.last_success_at.isoformat() if f.last_success_at else None,
                "age_seconds": f.age_seconds,
                "stale": f.stale,
            }
            for f in freshness
        ],
        "failures": [
            {
                "company_id": f.company_id,
                "resource": f.resource,
                "finished_at": f.finished_at.isoformat(),
                "error": f.error,
            }
            for f in failures
        ],
    }
