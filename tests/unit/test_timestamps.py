"""ASP.NET timestamps: 7 fractional digits, `Z` or an offset, no zone."""

from datetime import UTC, datetime

from approvalmax_pipeline.sources.approvalmax.timestamps import format_timestamp, parse_timestamp


def test_seven_fractional_digits_keep_microseconds() -> None:
    assert parse_timestamp("2025-03-04T05:06:07.1234567Z") == datetime(2025, 3, 4, 5, 6, 7, 123456, UTC)


def test_offset_is_converted_to_utc() -> None:
    assert parse_timestamp("2025-03-04T13:00:00.0000000+13:00") == datetime(2025, 3, 4, 0, 0, tzinfo=UTC)


def test_offset_without_colon() -> None:
    assert parse_timestamp("2025-03-04T01:00:00-0130") == datetime(2025, 3, 4, 2, 30, tzinfo=UTC)


def test_no_zone_means_utc() -> None:
    assert parse_timestamp("2025-03-04T00:00:00") == datetime(2025, 3, 4, tzinfo=UTC)


def test_few_fractional_digits() -> None:
    assert parse_timestamp("2025-03-04T00:00:00.5Z") == datetime(2025, 3, 4, 0, 0, 0, 500000, UTC)


def test_text_that_is_not_a_timestamp() -> None:
    assert parse_timestamp("PO-0001") is None
    assert parse_timestamp("2025-13-45T00:00:00Z") is None


def test_format_is_utc_with_z() -> None:
    value = datetime(2025, 3, 4, 5, 6, 7, 8, UTC)
    assert format_timestamp(value) == "2025-03-04T05:06:07.000008Z"
    assert parse_timestamp(format_timestamp(value)) == value


def test_a_spec_date_is_its_midnight_utc() -> None:
    assert parse_timestamp("2025-03-07") == datetime(2025, 3, 7, tzinfo=UTC)


def test_an_impossible_date_is_not_a_timestamp() -> None:
    assert parse_timestamp("2025-02-30") is None
    assert parse_timestamp("2025-3-7") is None


def test_dates_and_timestamps_parse_alike_in_one_vectorised_column() -> None:
    from approvalmax_pipeline.sources.approvalmax.arrow.columns import timestamps

    values = ["2025-03-07", "2025-03-07T00:00:00", "2025-03-07T13:00:00+13:00", None]
    parsed = timestamps(values)
    assert parsed is not None
    assert parsed.to_pylist() == [parse_timestamp(v) if v else None for v in values]
