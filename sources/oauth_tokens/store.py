"""Token stores: where the rotating refresh token lives between runs, behind a cross-process lock."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from filelock import FileLock, Timeout

from .errors import TokenStoreError, TokenStoreUnusable
from .record import TokenRecord
from .sealing import PLAIN, TokenSealing, rewrite_in_current_form


class TokenStore(Protocol):
    """A place for one token family. `lock()` must exclude every other process using the same store."""

    @property
    def location(self) -> str:
        """Where the tokens live, for messages (never includes a password)."""
        ...

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the store exclusively from read through refresh to save."""
        ...

    def load(self) -> TokenRecord | None:
        """The stored record, or None when the store is empty."""
        ...

    def save(self, record: TokenRecord) -> None:
        """Persist durably before returning; raise TokenStoreError on any failure."""
        ...


def rewrite(store: TokenStore) -> TokenRecord | None:
    """Read the store and write its record back in the form the store writes now (under the newest
    key), with the store locked; the write is the store's atomic save. None when it is empty."""
    with store.lock():
        record = store.load()
        if record is not None:
            store.save(record)
        return record


class FileTokenStore:
    """JSON file, mode 0600, replaced atomically, locked with a sibling `.lock` file.

    With keys in `sealing`, the file holds the record encrypted (a JSON string); a file in an
    older form (plain text, or under an older key) read with the lock held is rewritten in the
    newest form at once.
    """

    def __init__(
        self, path: str | os.PathLike[str], lock_timeout: float = 120.0, sealing: TokenSealing = PLAIN
    ) -> None:
        self.path = Path(path).expanduser()
        self.lock_timeout = lock_timeout
        self.sealing = sealing
        self._lock = FileLock(str(self.path) + ".lock", timeout=lock_timeout, mode=0o600)

    @property
    def location(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.path)!r})"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise TokenStoreError(f"cannot create the token folder {self.path.parent}: {exc.strerror}") from exc
        try:
            with self._lock:
                yield
        except Timeout as exc:
            raise TokenStoreError(
                f"another process has held the token store lock {self._lock.lock_file} for "
                f"{self.lock_timeout:.0f} s; if no other run is active, delete that lock file"
            ) from exc
        except PermissionError as exc:
            raise TokenStoreError(f"cannot create the lock file {self._lock.lock_file}: {exc.strerror}") from exc

    def load(self) -> TokenRecord | None:
        try:
            with open(self.path, "rb") as handle:
                mode = os.fstat(handle.fileno()).st_mode
                raw = handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TokenStoreError(f"cannot read the token file {self.path}: {exc.strerror}") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TokenStoreUnusable(
                f"the token file {self.path} is readable by other users; "
                f"run `chmod 600 {self.path}` and check who may have copied it"
            )
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TokenStoreUnusable(
                f"the token file {self.path} is corrupt or truncated (not valid JSON); it was left as it is: "
                "restore it from a backup or run `approvalmax auth import`"
            ) from exc
        opened = self.sealing.open(data, str(self.path))
        if self._lock.is_locked:
            rewrite_in_current_form(opened, self.save, self.location)
        return opened.record

    def save(self, record: TokenRecord) -> None:
        folder = self.path.parent
        payload = json.dumps(self.sealing.seal(record), indent=2, sort_keys=True).encode()
        tmp_name: str | None = None
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=".tokens-", suffix=".tmp", dir=folder)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp_name, self.path)
            tmp_name = None
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise TokenStoreError(f"cannot save tokens to {self.path}: {exc.strerror or exc}") from exc
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)
