"""A waiting cross-process lock from one DynamoDB item: a conditional put with a lease.

Secrets Manager has no lock that waits, so the token store's lock lives in DynamoDB, whose
conditional writes are strongly consistent: of two `PutItem ... attribute_not_exists` at once,
exactly one succeeds. The holder renews its lease by changing the item's version (`rvn`) every
third of the lease. A waiter takes the item over only after it has seen the same version, unchanged,
for a whole lease on its own monotonic clock, so a holder killed with -9 blocks the others for at
most one lease, and no two machines' wall clocks are ever compared (the scheme of Amazon's DynamoDB
lock client). The takeover is itself conditional on that version, so two waiters never both win.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from .errors import TokenStoreError

log = logging.getLogger(__name__)

KEY_ATTRIBUTE = "lock_key"


class LeaseLost(TokenStoreError):
    """Another process took the lease over (this one stalled longer than the lease): stop writing."""


class LeaseTimeout(TokenStoreError):
    """Another live process held the lease (renewing it) for longer than this one would wait."""


class DynamoLease:
    """`hold()` excludes every other holder of `key` in `table`; a dead holder's lease expires.

    `describe` turns a botocore error into the one line a user reads (the store knows its setting).
    """

    def __init__(
        self,
        client: Any,
        table: str,
        key: str,
        *,
        lease_seconds: float = 60.0,
        timeout: float = 120.0,
        describe: Callable[[BaseException, str], TokenStoreError] | None = None,
    ) -> None:
        self._client = client
        self.table = table
        self.key = key
        self.lease_seconds = lease_seconds
        self.timeout = timeout
        self._describe = describe or (lambda exc, doing: TokenStoreError(f"{doing}: {type(exc).__name__}"))
        self._rvn: str | None = None
        self._guard = threading.Lock()  # the heartbeat and `confirm` renew one at a time
        self._stop = threading.Event()
        self._lost = False

    @property
    def held(self) -> bool:
        return self._rvn is not None

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        self._acquire()
        heartbeat = threading.Thread(target=self._beat, name=f"lease-{self.key}", daemon=True)
        self._stop.clear()
        heartbeat.start()
        try:
            yield
        finally:
            self._stop.set()
            heartbeat.join()
            self._release()

    def confirm(self) -> None:
        """Renew now and raise LeaseLost if another process holds the lease: call before each write,
        so a holder that stalled past its lease never writes over the new holder's work."""
        if not self._renew():
            raise LeaseLost(
                f"the lock {self.key} in DynamoDB table {self.table} was taken over by another process "
                f"(this one stalled for more than its {self.lease_seconds:g} s lease); nothing was written"
            )

    def _item(self, rvn: str) -> dict[str, Any]:
        return {
            KEY_ATTRIBUTE: {"S": self.key},
            "rvn": {"S": rvn},
            "lease_seconds": {"N": repr(float(self.lease_seconds))},
            "holder": {"S": f"{socket.gethostname()}:{os.getpid()}"},
        }

    def _put(self, condition: str, values: dict[str, Any] | None = None) -> bool:
        rvn = uuid.uuid4().hex
        request: dict[str, Any] = {"TableName": self.table, "Item": self._item(rvn), "ConditionExpression": condition}
        if values:
            request["ExpressionAttributeValues"] = values
        try:
            self._client.put_item(**request)
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        except Exception as exc:
            raise self._describe(exc, f"cannot take the lock in DynamoDB table {self.table}") from exc
        self._rvn = rvn
        self._lost = False
        return True

    def _current(self) -> tuple[str, float] | None:
        try:
            response = self._client.get_item(
                TableName=self.table, Key={KEY_ATTRIBUTE: {"S": self.key}}, ConsistentRead=True
            )
        except Exception as exc:
            raise self._describe(exc, f"cannot read the lock in DynamoDB table {self.table}") from exc
        item = response.get("Item")
        if item is None:
            return None
        return item["rvn"]["S"], float(item.get("lease_seconds", {}).get("N", self.lease_seconds))

    def _acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        poll = min(0.5, self.lease_seconds / 4)
        seen: str | None = None
        seen_at = 0.0
        while True:
            if self._put(f"attribute_not_exists({KEY_ATTRIBUTE})"):
                return
            current = self._current()
            if current is not None:
                rvn, lease = current
                now = time.monotonic()
                if rvn != seen:
                    seen, seen_at = rvn, now
                elif now - seen_at >= lease:
                    if self._put("rvn = :seen", {":seen": {"S": rvn}}):
                        log.info("took over the lock %s: its holder did not renew it for %.0f s", self.key, lease)
                        return
                    seen = None
            if time.monotonic() >= deadline:
                raise LeaseTimeout(
                    f"another process has held the lock {self.key} (DynamoDB table {self.table}) "
                    f"for {self.timeout:.0f} s while renewing it; if no other run is active, delete that item"
                )
            time.sleep(poll)

    def _renew(self) -> bool:
        with self._guard:
            if self._rvn is None or self._lost:
                return False
            rvn = uuid.uuid4().hex
            try:
                self._client.update_item(
                    TableName=self.table,
                    Key={KEY_ATTRIBUTE: {"S": self.key}},
                    UpdateExpression="SET rvn = :new",
                    ConditionExpression="rvn = :mine",
                    ExpressionAttributeValues={":new": {"S": rvn}, ":mine": {"S": self._rvn}},
                )
            except self._client.exceptions.ConditionalCheckFailedException:
                self._lost = True
                return False
            except Exception as exc:
                raise self._describe(exc, f"cannot renew the lock in DynamoDB table {self.table}") from exc
            self._rvn = rvn
            return True

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                if not self._renew():
                    log.warning("lost the lock %s to another process: it could not renew its lease in time", self.key)
                    return
            except TokenStoreError as exc:  # a network blip: the next beat (or confirm) tries again
                log.warning("%s", exc)

    def _release(self) -> None:
        with self._guard:
            rvn, self._rvn = self._rvn, None
        if rvn is None or self._lost:
            return
        with contextlib.suppress(Exception):  # an undeleted item only delays the next holder by one lease
            self._client.delete_item(
                TableName=self.table,
                Key={KEY_ATTRIBUTE: {"S": self.key}},
                ConditionExpression="rvn = :mine",
                ExpressionAttributeValues={":mine": {"S": rvn}},
            )
