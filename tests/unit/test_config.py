"""Settings from dlt's providers: names, defaults, and the missing-setting message."""

from __future__ import annotations

import pytest

from sources.approvalmax.config import load_settings
from sources.approvalmax.errors import ConfigError

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
