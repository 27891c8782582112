"""A page's envelope read from its end, exactly, or from a whole parse when its shape is unusual."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from approvalmax_pipeline.sources.approvalmax.errors import ApiResponseError
from approvalmax_pipeline.sources.approvalmax.pages import NotAnEnvelope, read_envelope

AT = datetime(2025, 6, 1, tzinfo=UTC)


def body(payload: object, token: object = None, **extra: object) -> bytes:
    return json.dumps({"payload": payload, **extra, "continuationToken": token}).encode()


def test_the_usual_shape_is_read_without_parsing_the_documents() -> None:
    page = read_envelope(body([{"a": 1}], "t2"), AT)
    assert page.parsed is None and page.continuation_token == "t2" and page.documents() == [{"a": 1}]


def test_a_null_token_ends_the_list() -> None:
    assert read_envelope(body([]), AT).continuation_token is None


def test_a_token_with_escaped_quotes_is_decoded() -> None:
    assert read_envelope(body([], 'x"y\\z'), AT).continuation_token == 'x"y\\z'


def test_a_document_field_named_continuation_token_is_not_the_envelope() -> None:
    page = read_envelope(json.dumps({"payload": [{"continuationToken": "inner"}]}).encode(), AT)
    assert page.continuation_token is None and page.parsed == [{"continuationToken": "inner"}]


def test_an_unpaged_list_is_one_page() -> None:
    page = read_envelope(b'[{"a": 1}]', AT)
    assert page.parsed == [{"a": 1}] and page.continuation_token is None


def test_a_cut_body_is_not_an_envelope() -> None:
    with pytest.raises(NotAnEnvelope):
        read_envelope(body([{"a": 1}], "t")[:-20], AT)


def test_json_without_a_payload_list_names_the_path() -> None:
    with pytest.raises(ApiResponseError, match="GET /x answered JSON without a `payload` list"):
        read_envelope(b'{"items": []}', AT, "/x")


def test_a_token_that_is_not_text_is_refused() -> None:
    with pytest.raises(ApiResponseError, match="not text"):
        read_envelope(b'{"continuationToken": 7, "payload": []}', AT, "/x")


def test_a_page_garbled_in_the_middle_fails_when_its_documents_are_read() -> None:
    page = read_envelope(b'{"payload": [{"a": 1,,}], "continuationToken": null}', AT)
    with pytest.raises(ApiResponseError, match="not valid JSON"):
        page.documents()
