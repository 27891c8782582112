"""Option checks: dates, resources, companies."""

from datetime import UTC, datetime

import pytest

from approvalmax_pipeline.pipelines.options import check_window, parse_when, select_resources
from approvalmax_pipeline.sources.approvalmax.companies import select_companies
from approvalmax_pipeline.sources.approvalmax.errors import ConfigError
from approvalmax_pipeline.sources.approvalmax.settings import RESOURCE_NAMES

COMPANIES = [{"companyId": "a", "name": "A"}, {"companyId": "b", "name": "B"}]


def test_date_means_midnight_utc() -> None:
    assert parse_when("--since", "2025-02-03") == datetime(2025, 2, 3, tzinfo=UTC)


def test_timestamp_with_offset_converted_to_utc() -> None:
    assert parse_when("--since", "2025-02-03T10:00:00+10:00") == datetime(2025, 2, 3, tzinfo=UTC)


def test_malformed_date_names_the_option_and_the_format() -> None:
    with pytest.raises(ConfigError, match="--since '2025-13-01' is not a date: use YYYY-MM-DD"):
        parse_when("--since", "2025-13-01")


def test_window_must_run_forward() -> None:
    with pytest.raises(ConfigError, match="earlier"):
        check_window(datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))


def test_until_alone_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs --since"):
        check_window(None, datetime(2025, 1, 1, tzinfo=UTC))


def test_all_resources_by_default() -> None:
    assert select_resources([]) == RESOURCE_NAMES


def test_unknown_resource_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown resource 'bills': choose from companies"):
        select_resources(["bills"])


def test_companies_filtered_in_api_order() -> None:
    assert [c.record for c in select_companies(COMPANIES, ["b"])] == [COMPANIES[1]]
    assert [c.id for c in select_companies(COMPANIES, None)] == [str(c["companyId"]) for c in COMPANIES]


def test_unknown_company_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown company zz"):
        select_companies(COMPANIES, ["a", "zz"])
