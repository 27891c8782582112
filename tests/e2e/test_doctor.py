"""`approvalmax doctor` against the sandbox: verified in its default state, each variant reported."""

from __future__ import annotations

import pytest

from ..conftest import Workspace
from .test_exit_codes import assert_one_line


def rows(output: str) -> dict[str, str]:
    """assumption start -> the rest of its table row (the first line of each row)."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) >= 3 and cells[1] in ("verified", "differs", "not checked"):
            found[cells[0]] = " | ".join(cells[1:])
    return found


def row(output: str, start: str) -> str:
    return next(value for key, value in rows(output).items() if key.startswith(start))


def doctor(ws: Workspace, *args: str) -> tuple[int, str]:
    result = ws.cli("doctor", *args, env={"COLUMNS": "400"})
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout


def test_the_default_sandbox_verifies_every_assumption_it_can(ws: Workspace) -> None:
    code, output = doctor(ws)
    assert code == 0, output
    checks = rows(output)
    assert len(checks) == 16, output
    unverified = [k for k, v in checks.items() if not v.startswith("verified")]
    assert len(unverified) == 1 and unverified[0].startswith("rate limit 100 per company"), output
    assert "date (YYYY-MM-DD)" in row(output, "timestamps")
    # bounded: the budget for 2 sampled companies and 7 types is 22
    assert "22 API requests (at most 22) and one token refresh" in output
    assert ws.admin("GET", "stats")["grants"].get("refresh_token") == 1


@pytest.mark.parametrize(
    ("knobs", "assumption", "expected"),
    [
        ({"modified_filter": "refused"}, "`modifiedAtOrAfter`", "differs | refused"),
        ({"modified_filter": "ignored"}, "`modifiedAtOrAfter`", "differs | accepted but ignored"),
        ({"problem_style": "plain"}, "errors:", "differs | a 400 with detail"),
        ({"missing_types": ["xero/quotes"]}, "path xero/quotes", "not checked | 404 for the 2"),
        ({"unknown_fields": True}, "/companies", "verified | a plain array of 2 item(s) with companyId, name; extra"),
        ({"date_format": "datetime"}, "timestamps", "verified"),
    ],
)
def test_each_variant_is_reported(ws: Workspace, knobs: dict[str, object], assumption: str, expected: str) -> None:
    ws.admin("POST", "config", **knobs)
    code, output = doctor(ws)
    assert expected in row(output, assumption), output
    assert code == (1 if expected.startswith("differs") else 0), output


def test_the_date_time_form_of_dates_is_named(ws: Workspace) -> None:
    ws.admin("POST", "config", date_format="datetime")
    _code, output = doctor(ws)
    assert "date (YYYY-MM-DD)" not in row(output, "timestamps") and "no zone" in row(output, "timestamps")


def test_a_connection_disabled_with_403_exits_3(ws: Workspace) -> None:
    assert ws.cli("ping").returncode == 0
    ws.admin("POST", "config", revoked_status=403)
    ws.admin("POST", "revoke", mode="disable")
    assert_one_line(ws.cli("doctor"), 3, "(403)", "disabled or deleted")


def test_doctor_prints_no_token_and_no_document_content(ws: Workspace) -> None:
    _code, output = doctor(ws)
    truth = ws.admin("GET", "export")
    contacts = {d["contact"] for by_type in truth.values() for d in by_type["xero/bills"]}
    assert not [c for c in contacts if c in output]
    token = ws.env["SOURCES__APPROVALMAX__CREDENTIALS__REFRESH_TOKEN"]
    assert token not in output and ws.sandbox.identity.client_secret not in output
