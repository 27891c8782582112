"""One SQLite write transaction, shared by the webhook queue and the rate budget."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator


@contextlib.contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE (the write lock at once, so the statements inside see no other writer) ...
    COMMIT, rolled back on any error: a failed write (a full disk) must not leave a shared
    connection inside a transaction that every later write would then refuse. `db` must be in
    autocommit mode (`isolation_level=None`)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
