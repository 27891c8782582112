"""Settings from dlt's providers: names, defaults, and the missing-setting message."""

from __future__ import annotations

import pytest

from approvalmax_pipeline.sources.approvalmax.config import load_settings
from approvalmax_pipeline.sources.approvalmax.errors import ConfigError

BASE = "SOURCES__APPROVALMAX__"


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    for key in list(os.environ):
        if key.startswith(("SOURCES__", "CREDENTIALS__")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no .dlt folder here


def test_environment_variables_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BASE + "CREDENTIALS__CLIENT_ID", "cid")
    monkeypatch.setenv(BASE + "CREDENTIALS__CLIENT_SECRET", "secret")
    monkeypatch.setenv(BASE + "LOOKBACK_MINUTES", "2.5")
    settings = load_settings()
    assert settings.credentials.client_id == "cid"
    assert settings.credentials.refresh_token is None
    assert settings.lookback_minutes == 2.5
    assert settings.api_base_url == "https://public-api.approvalmax.com"
    assert settings.identity_base_url == "https://identity.approvalmax.com"


def test_missing_secret_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BASE + "CREDENTIALS__CLIENT_ID", "cid")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(f"missing setting {BASE}CREDENTIALS__CLIENT_SECRET:")


def test_bad_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BASE + "CREDENTIALS__CLIENT_ID", "cid")
    monkeypatch.setenv(BASE + "CREDENTIALS__CLIENT_SECRET", "s")
    monkeypatch.setenv(BASE + "API_BASE_URL", "public-api.approvalmax.com")
    with pytest.raises(ConfigError, match="API_BASE_URL must be an http"):
        load_settings()


def test_value_of_the_wrong_type_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BASE + "CREDENTIALS__CLIENT_ID", "cid")
    monkeypatch.setenv(BASE + "CREDENTIALS__CLIENT_SECRET", "s")
    monkeypatch.setenv(BASE + "CONCURRENCY", "many")
    with pytest.raises(ConfigError, match="invalid configuration"):
        load_settings()


def test_configured_document_types_extend_the_built_in_ones() -> None:
    from approvalmax_pipeline.sources.approvalmax.config import merge_document_types
    from approvalmax_pipeline.sources.approvalmax.settings import DOCUMENT_TYPES, STANDALONE_COLUMNS

    types = merge_document_types(
        [
            {"table": "qbooks_bills", "path": "qbooks/bills"},
            {"table": "cin7_pos", "path": "cin7/x", "shape": "standalone"},
        ]
    )
    assert types[: len(DOCUMENT_TYPES)] == DOCUMENT_TYPES
    assert [(t.resource, t.path) for t in types[-2:]] == [("qbooks_bills", "qbooks/bills"), ("cin7_pos", "cin7/x")]
    assert types[-1].columns == STANDALONE_COLUMNS


def test_a_configured_path_for_a_built_in_table_keeps_its_columns() -> None:
    from approvalmax_pipeline.sources.approvalmax.config import merge_document_types
    from approvalmax_pipeline.sources.approvalmax.settings import BILL_COLUMNS

    types = {t.resource: t for t in merge_document_types([{"table": "xero_bills", "path": "xero/bills-v2"}])}
    assert (types["xero_bills"].path, types["xero_bills"].columns) == ("xero/bills-v2", BILL_COLUMNS)


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"table": "Bills", "path": "x/y"}, "snake_case"),
        ({"table": "a__b", "path": "x/y"}, "snake_case"),
        ({"table": "companies", "path": "x/y"}, "not companies"),
        ({"table": "qb", "path": "/api/v1/companies/x/qbooks/bills"}, "must be the part after"),
        ({"table": "qb", "path": "x y"}, "must be the part after"),
        ({"table": "qb", "path": "x/y", "shape": "odd"}, "accounting or standalone"),
        ({"table": "qb", "path": "x/y", "kind": "x"}, "unknown key(s) kind"),
        ({"table": "qb", "path": "xero/bills"}, "configured for two tables"),
        ("qb", "is not a table"),
    ],
)
def test_bad_document_types_name_the_entry_and_the_fix(entry: object, fragment: str) -> None:
    from approvalmax_pipeline.sources.approvalmax.config import merge_document_types
    from approvalmax_pipeline.sources.approvalmax.errors import ConfigError

    with pytest.raises(ConfigError, match="SOURCES__APPROVALMAX__DOCUMENT_TYPES") as raised:
        merge_document_types([entry])  # type: ignore[list-item]
    assert fragment in str(raised.value)
