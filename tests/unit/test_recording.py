"""Pseudonyms for recordings: personal text replaced, stable within a recording, codes kept."""

from approvalmax_pipeline.sources.approvalmax.recording import Pseudonyms, is_personal

KEY = b"k" * 32


def test_personal_fields_are_replaced_and_the_structure_kept() -> None:
    scrubbed = Pseudonyms(KEY).scrub({"contact": "Acme Ltd", "total": 10.5, "lineItems": [{"description": "Pens"}]})
    assert scrubbed["contact"].startswith("contact-") and scrubbed["contact"] != "Acme Ltd"
    assert scrubbed["total"] == 10.5
    assert scrubbed["lineItems"][0]["description"].startswith("description-")


def test_the_same_value_gets_the_same_pseudonym_within_a_recording() -> None:
    pseudonyms = Pseudonyms(KEY)
    assert pseudonyms.of("contact", "Acme") == pseudonyms.of("contact", "Acme")
    assert pseudonyms.of("contact", "Acme") != pseudonyms.of("contact", "Acme Ltd")


def test_another_recording_key_gives_other_pseudonyms() -> None:
    assert Pseudonyms(KEY).of("contact", "Acme") != Pseudonyms(b"j" * 32).of("contact", "Acme")


def test_emails_stay_emails_on_a_reserved_domain() -> None:
    assert Pseudonyms(KEY).of("email", "ben@example.com").endswith("@example.invalid")


def test_statuses_survive_because_they_are_codes() -> None:
    status = {"name": "Approved", "value": 2}
    assert Pseudonyms(KEY).scrub({"requestStatus": status})["requestStatus"] == status


def test_ids_are_not_personal_but_unknown_address_fields_are() -> None:
    assert not is_personal("contactId") and not is_personal("requestId")
    assert is_personal("deliveryAddress") and is_personal("recipientEmail") and is_personal("name")
    assert not is_personal("modifiedAt") and not is_personal("total")


def test_everything_under_a_personal_object_is_replaced() -> None:
    scrubbed = Pseudonyms(KEY).scrub({"deliveryAddress": {"line1": "1 Queen St", "city": "Auckland"}})
    assert "Queen" not in str(scrubbed) and "Auckland" not in str(scrubbed)
