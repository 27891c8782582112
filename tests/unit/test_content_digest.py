"""The digest a company's record or profile list is compared by before its rows load."""

from __future__ import annotations

from approvalmax_pipeline.sources.approvalmax.content_digest import digest, is_digest

PROFILES = [{"userId": "u1", "firstName": "Ann", "lastName": "Lee", "email": "ann@example.com"}]


def test_equal_answers_digest_equal_whatever_their_key_order() -> None:
    reordered = [{key: PROFILES[0][key] for key in reversed(PROFILES[0])}]
    assert digest(reordered) == digest(PROFILES)


def test_any_change_changes_the_digest() -> None:
    renamed = [{**PROFILES[0], "lastName": "Li"}]
    added = [*PROFILES, {"userId": "u2"}]
    assert len({digest(PROFILES), digest(renamed), digest(added), digest([{}, *PROFILES])}) == 4


def test_a_digest_is_told_from_a_document_cursor() -> None:
    assert is_digest(digest(PROFILES))
    assert not is_digest("2026-12-07T10:00:00.000000Z")
    assert not is_digest(None)
