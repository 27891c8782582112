"""Error bodies become one clear message."""

import httpx

from sources.approvalmax.problem import api_error, clean_text


def response(status: int, **kwargs: object) -> httpx.Response:
    return httpx.Response(
        status, request=httpx.Request("GET", "https://api.test/api/v1/companies/c1/xero/bills"), **kwargs
    )  # type: ignore[arg-type]


def test_problem_details_give_status_title_detail_and_path() -> None:
    error = api_error(
        response(
            400,
            json={
                "title": "Bad Request",
                "status": 400,
                "detail": "The c1 is disabled.",
                "instance": "/api/v1/companies/c1/xero/bills",
            },
        )
    )
    assert str(error) == "GET /api/v1/companies/c1/xero/bills answered 400 Bad Request: The c1 is disabled."
    assert (error.status, error.detail) == (400, "The c1 is disabled.")


def test_validation_errors_without_detail() -> None:
    error = api_error(
        response(400, json={"title": "One or more validation errors occurred.", "errors": {"limit": ["too big"]}})
    )
    assert "limit" in str(error) and "too big" in str(error)


def test_html_body_is_shortened_to_one_line() -> None:
    error = api_error(response(502, headers={"content-type": "text/html"}, text="<html>\n" + "x" * 1000 + "</html>"))
    message = str(error)
    assert "\n" not in message and "(text/html)" in message and len(message) < 300


def test_empty_body_uses_reason_phrase() -> None:
    assert str(api_error(response(404))) == "GET /api/v1/companies/c1/xero/bills answered 404 Not Found"


def test_clean_text_strips_control_characters_and_truncates() -> None:
    assert clean_text("a\x1b[31mb\r\nc") == "a [31mb c"
    assert len(clean_text("y" * 1000, 50)) == 50
