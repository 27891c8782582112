"""Row preparation: company id, status, timestamps, row counts per child table."""

from collections import Counter
from datetime import UTC, datetime

from approvalmax_pipeline.sources.approvalmax.records import count_rows, flatten_status, prepare_row


def test_company_id_added_when_missing() -> None:
    assert prepare_row({"requestId": "r"}, "c1")["companyId"] == "c1"


def test_company_id_kept_when_present() -> None:
    assert prepare_row({"requestId": "r", "companyId": "c2"}, "c1")["companyId"] == "c2"


def test_status_object_becomes_camel_case_name() -> None:
    assert flatten_status({"name": "OnApproval", "value": 1}) == "onApproval"


def test_status_string_is_kept() -> None:
    assert flatten_status("approved") == "approved"


def test_status_object_without_name_uses_value() -> None:
    assert flatten_status({"value": 3}) == "3"


def test_timestamps_parsed_at_any_depth() -> None:
    row = prepare_row(
        {
            "modifiedAt": "2025-01-02T03:04:05.1234567Z",
            "events": [{"eventDate": "2025-01-02T00:00:00+13:00", "comment": "2025-01-02T00:00:00Z"}],
        },
        "c",
    )
    assert row["modifiedAt"] == datetime(2025, 1, 2, 3, 4, 5, 123456, UTC)
    assert row["events"][0]["eventDate"] == datetime(2025, 1, 1, 11, 0, tzinfo=UTC)
    assert row["events"][0]["comment"] == "2025-01-02T00:00:00Z"  # not a time field


def test_unparseable_time_field_is_left_as_text() -> None:
    assert prepare_row({"decisionDate": "not yet"}, "c")["decisionDate"] == "not yet"


def test_count_rows_follows_nested_lists() -> None:
    counts: Counter[str] = Counter()
    doc = {"lineItems": [{"tracking": [{"a": 1}, {"a": 2}]}, {"tracking": []}], "events": [], "tags": ["x"]}
    count_rows("xero_bills", [doc, {}], counts)
    assert counts == Counter({"xero_bills": 2, "xero_bills__line_items": 2, "xero_bills__line_items__tracking": 2})
