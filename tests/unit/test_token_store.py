"""The file token store: private, atomic, and never overwriting what it cannot read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from approvalmax_pipeline.sources.oauth_tokens import FileTokenStore, TokenRecord, TokenStoreError, TokenStoreUnusable


def record() -> TokenRecord:
    return TokenRecord(
        refresh_token="rt-1", access_token="at-1", access_token_expires_at=datetime(2026, 1, 1, tzinfo=UTC)
    )


def test_saved_file_is_mode_0600_and_round_trips(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "sub" / "tokens.json")
    with store.lock():
        store.save(record())
    assert (tmp_path / "sub" / "tokens.json").stat().st_mode & 0o777 == 0o600
    loaded = store.load()
    assert loaded is not None and loaded.refresh_token == "rt-1"
    assert loaded.access_token_expires_at == datetime(2026, 1, 1, tzinfo=UTC)


def test_empty_store_loads_none(tmp_path: Path) -> None:
    assert FileTokenStore(tmp_path / "tokens.json").load() is None


def test_no_temp_files_left_behind(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    for i in range(3):
        store.save(TokenRecord(refresh_token=f"rt-{i}"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json"]


def test_corrupt_file_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text('{"refresh_token": "rt')
    path.chmod(0o600)
    with pytest.raises(TokenStoreUnusable, match="corrupt or truncated"):
        FileTokenStore(path).load()
    assert path.read_text() == '{"refresh_token": "rt'


def test_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(TokenRecord(refresh_token="rt").to_json()))
    path.chmod(0o644)
    with pytest.raises(TokenStoreUnusable, match="chmod 600"):
        FileTokenStore(path).load()


def test_wrong_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("[1, 2]")
    path.chmod(0o600)
    with pytest.raises(TokenStoreUnusable, match="not a token record"):
        FileTokenStore(path).load()


def test_failed_save_raises_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "tokens.json"
    target.mkdir()  # os.replace onto a folder fails, even for root
    with pytest.raises(TokenStoreError, match="cannot save tokens"):
        FileTokenStore(target).save(record())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json"]


def test_repr_never_shows_tokens() -> None:
    assert "rt-1" not in repr(record()) and "at-1" not in repr(record())


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://listener:s3cr%t-pw@127.0.0.1:1/db",
        "postgresql://u:pa@ss@127.0.0.1:1/db",
        "postgresql://u:longpassword@127.0.0.1:1/db",
        "postgresql://u@127.0.0.1:1/db?password=hunter22",
    ],
)
def test_no_part_of_a_postgresql_password_reaches_a_message(dsn: str) -> None:
    """libpq quotes a URL's pieces when it cannot parse it; the lines we print never hold them."""
    import psycopg2

    from approvalmax_pipeline.sources.oauth_tokens.postgres_store import driver_message, redact_dsn

    with pytest.raises(psycopg2.Error) as caught:
        psycopg2.connect(dsn, connect_timeout=2)
    said = driver_message(caught.value, dsn) + " " + redact_dsn(dsn)
    for secret in ("s3cr%t-pw", "pa@ss", "ss@", "longpassword", "hunter22"):
        assert secret not in said
