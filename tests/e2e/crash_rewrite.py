"""Re-encrypt the token store as `approvalmax auth rotate-key` does, and SIGKILL this process at one step.

Usage: python -m tests.e2e.crash_rewrite STEP   (before-save | before-replace | after-save)

The store and its keys come from the environment a run reads (SOURCES__APPROVALMAX__TOKEN_STORE,
..._TOKEN_KEY, ..._CREDENTIALS__CLIENT_ID), built from the token layer alone so the process starts fast.
`before-replace` is the file store's moment between writing its temp file and renaming it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from approvalmax_pipeline.sources.oauth_tokens import FileTokenStore, TokenRecord, TokenSealing, parse_keys
from approvalmax_pipeline.sources.oauth_tokens.aws_store import SecretsManagerTokenStore, is_aws_url
from approvalmax_pipeline.sources.oauth_tokens.postgres_store import PostgresTokenStore, is_postgres_url
from approvalmax_pipeline.sources.oauth_tokens.store import TokenStore, rewrite

STEPS = ("before-save", "before-replace", "after-save")


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def open_store() -> TokenStore:
    location = os.environ["SOURCES__APPROVALMAX__TOKEN_STORE"]
    sealing = TokenSealing(parse_keys(os.environ.get("SOURCES__APPROVALMAX__TOKEN_KEY")))
    if is_postgres_url(location):
        key = "approvalmax:" + os.environ["SOURCES__APPROVALMAX__CREDENTIALS__CLIENT_ID"]
        return PostgresTokenStore(location, key=key, sealing=sealing)
    if is_aws_url(location):
        return SecretsManagerTokenStore(location, sealing=sealing)
    return FileTokenStore(location, sealing=sealing)


def main(step: str) -> None:
    store = open_store()
    save: Callable[[TokenRecord], None] = store.save

    def observed_save(record: TokenRecord) -> None:
        if step == "before-save":
            die()
        save(record)
        if step == "after-save":
            die()

    store.save = observed_save  # type: ignore[method-assign]
    if step == "before-replace":
        replace = os.replace

        def kill_before_replace(*args: Any, **kwargs: Any) -> None:
            die()
            replace(*args, **kwargs)

        os.replace = kill_before_replace
    rewrite(store)
    print("finished without reaching", step)


if __name__ == "__main__":
    assert sys.argv[1] in STEPS, sys.argv[1]
    main(sys.argv[1])
