"""Error bodies become one clear message."""

import httpx

from approvalmax_pipeline.sources.approvalmax.problem import api_error, clean_text


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


def aspnet_invalid_input(name: str, message: str) -> dict[str, object]:
    return {
        "type": "/api/errors/invalidInput",
        "title": "One or more validation errors occurred.",
        "status": 400,
        "detail": "One or more validation errors occurred.",
        "instance": "/api/v1/companies/c1/xero/bills",
        "error": {
            "code": "invalidInput",
            "title": "Invalid input",
            "parameters": [{"path": name, "name": name, "value": "x", "errorMessage": message}],
        },
        "traceId": "00-abc-00",
    }


def test_aspnet_error_message_is_shown_with_its_parameter() -> None:
    error = api_error(response(400, json=aspnet_invalid_input("modifiedAtOrAfter", "The value 'x' is not valid.")))
    assert "modifiedAtOrAfter: The value 'x' is not valid." in str(error)
    assert error.parameters == ("modifiedAtOrAfter",)


def test_error_message_that_names_its_parameter_is_not_prefixed_again() -> None:
    error = api_error(response(400, json=aspnet_invalid_input("limit", "limit must be positive")))
    assert str(error).endswith("validation errors occurred.; limit must be positive")


def test_a_400_names_a_parameter_from_the_list_or_from_its_text() -> None:
    listed = api_error(response(400, json=aspnet_invalid_input("modifiedAtOrAfter", "not supported")))
    plain = api_error(response(400, json={"title": "Bad Request", "detail": "Unknown parameter modifiedAtOrAfter"}))
    other = api_error(response(400, json=aspnet_invalid_input("limit", "too big")))
    assert listed.names_parameter("modifiedAtOrAfter") and plain.names_parameter("modifiedAtOrAfter")
    assert not other.names_parameter("modifiedAtOrAfter")


def test_malformed_error_parameters_are_ignored() -> None:
    body = {"title": "Bad Request", "detail": "d", "error": {"parameters": ["x", {"name": 3}, {"errorMessage": 5}]}}
    assert str(api_error(response(400, json=body))).endswith("Bad Request: d")
