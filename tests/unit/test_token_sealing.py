"""Tokens encrypted at rest in the file store: sealed, rotated, migrated, and never overwritten unread."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from approvalmax_pipeline.pipelines.errors import EXIT_USAGE, exit_code
from approvalmax_pipeline.sources.oauth_tokens import (
    FileTokenStore,
    TokenKeyError,
    TokenRecord,
    TokenSealing,
    TokenStoreError,
    TokenStoreUnusable,
    new_key,
    parse_keys,
)
from approvalmax_pipeline.sources.oauth_tokens.sealing import Opened, rewrite_in_current_form
from approvalmax_pipeline.sources.oauth_tokens.store import rewrite

OLD, NEW = new_key(), new_key()
SETTING = "SOURCES__APPROVALMAX__TOKEN_KEY"


def record() -> TokenRecord:
    return TokenRecord(refresh_token="rt-secret-1", previous_refresh_token="rt-secret-0", access_token="at-secret-1")


def sealed_with(*keys: str) -> TokenSealing:
    return TokenSealing(keys, setting=SETTING)


def store_at(path: Path, *keys: str) -> FileTokenStore:
    return FileTokenStore(path, sealing=sealed_with(*keys))


def saved(path: Path, *keys: str) -> bytes:
    """The file's bytes after `record()` is saved under `keys` (none: plain text, as older versions wrote)."""
    store_at(path, *keys).save(record())
    return path.read_bytes()


def assert_holds_no_token(raw: bytes) -> None:
    for token in (b"rt-secret-1", b"rt-secret-0", b"at-secret-1"):
        assert token not in raw


def test_a_file_saved_with_a_key_holds_no_token_in_plain_text(tmp_path: Path) -> None:
    assert_holds_no_token(saved(tmp_path / "tokens.json", NEW))


def test_a_file_saved_with_a_key_reads_back_the_same_record(tmp_path: Path) -> None:
    saved(tmp_path / "tokens.json", NEW)
    assert store_at(tmp_path / "tokens.json", NEW).load() == record()


def test_a_sealed_file_is_a_json_string_so_an_older_version_refuses_it_rather_than_misreading_it(
    tmp_path: Path,
) -> None:
    assert isinstance(json.loads(saved(tmp_path / "tokens.json", NEW)), str)


def test_without_a_key_the_file_is_the_plain_json_object_it_always_was(tmp_path: Path) -> None:
    assert json.loads(saved(tmp_path / "tokens.json"))["refresh_token"] == "rt-secret-1"


def test_a_plain_file_read_under_the_lock_is_rewritten_encrypted(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    saved(path)
    store = store_at(path, NEW)
    with store.lock():
        assert store.load() == record()
    assert_holds_no_token(path.read_bytes())
    assert store_at(path, NEW).load() == record()


def test_a_plain_file_read_without_the_lock_is_only_read(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    before = saved(path)
    assert store_at(path, NEW).load() == record()
    assert path.read_bytes() == before


def test_a_file_under_an_older_key_opens_with_both_keys_given(tmp_path: Path) -> None:
    saved(tmp_path / "tokens.json", OLD)
    assert store_at(tmp_path / "tokens.json", NEW, OLD).load() == record()


def test_a_file_under_an_older_key_read_under_the_lock_is_rewritten_under_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    saved(path, OLD)
    store = store_at(path, NEW, OLD)
    with store.lock():
        store.load()
    assert store_at(path, NEW).load() == record()  # the old key is no longer needed


def test_rewrite_re_encrypts_under_the_newest_key(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    saved(path, OLD)
    assert rewrite(store_at(path, NEW, OLD)) == record()
    assert store_at(path, NEW).load() == record()


def test_rewrite_of_an_empty_store_writes_nothing(tmp_path: Path) -> None:
    assert rewrite(store_at(tmp_path / "tokens.json", NEW)) is None
    assert not (tmp_path / "tokens.json").exists()


def test_an_encrypted_file_without_a_key_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    before = saved(path, NEW)
    store = store_at(path)
    with pytest.raises(TokenKeyError, match=f"no key is configured: set {SETTING}"), store.lock():
        store.load()
    assert path.read_bytes() == before


def test_a_wrong_key_is_refused_and_the_file_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    before = saved(path, OLD)
    store = store_at(path, NEW)
    with pytest.raises(TokenKeyError, match="none of the 1 key"), store.lock():
        store.load()
    assert path.read_bytes() == before


def test_a_changed_byte_in_a_sealed_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    sealed = json.loads(saved(path, NEW))
    path.write_text(json.dumps(sealed[:-8] + ("A" if sealed[-8] != "A" else "B") + sealed[-7:]))
    with pytest.raises(TokenKeyError):
        store_at(path, NEW).load()


def test_a_malformed_key_is_refused_by_position_never_quoted() -> None:
    with pytest.raises(TokenKeyError, match="key 2 of 2 is not a Fernet key") as info:
        sealed_with(NEW, "not-a-key-at-all")
    assert "not-a-key-at-all" not in str(info.value) and info.value.__cause__ is None


def test_no_key_error_message_holds_a_key(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    saved(path, OLD)
    with pytest.raises(TokenKeyError) as info:
        store_at(path, NEW).load()
    assert NEW not in str(info.value) and OLD not in str(info.value)


def test_a_key_error_is_a_usage_error_exit_2() -> None:
    assert exit_code(TokenKeyError("x")) == EXIT_USAGE


def test_keys_in_a_setting_are_split_on_commas_and_whitespace_newest_first() -> None:
    assert parse_keys(f" {NEW}, {OLD}\n") == (NEW, OLD)


def test_an_empty_setting_means_no_keys() -> None:
    assert parse_keys(None) == () and parse_keys(" ") == ()


def test_a_new_key_is_a_fresh_key_the_sealing_takes() -> None:
    key = new_key()
    assert sealed_with(key).encrypted and key != new_key()


def test_a_failed_rewrite_leaves_the_older_form_and_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    def failing_save(_: TokenRecord) -> None:
        raise TokenStoreError("cannot save tokens to /x: Read-only file system")

    with caplog.at_level(logging.WARNING):
        rewrite_in_current_form(Opened(record(), current=False), failing_save, "/x")
    assert "stays in its older form" in caplog.text


def test_a_record_in_the_current_form_is_not_rewritten() -> None:
    def save(_: TokenRecord) -> None:
        raise AssertionError("saved")

    rewrite_in_current_form(Opened(record(), current=True), save, "/x")


def test_a_sealed_value_that_is_no_record_is_unusable() -> None:
    sealing = sealed_with(NEW)
    value = Fernet(NEW.encode()).encrypt(b"[1, 2]").decode()
    with pytest.raises(TokenStoreUnusable, match="not a token record"):
        sealing.open(value, "/x")
