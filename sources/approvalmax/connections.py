"""The run's connections: up to N httpx clients of one connection each, one lent per request.

One httpx client with a pool of N connections scans that pool and its queue of waiting
requests under a lock for every request, which at 32 requests in flight cost more CPU than
the rest of the request did. A client of one connection, lent to one thread at a time, scans
nothing, and the run still holds at most N connections (the run-wide cap, `max_concurrency`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import httpx


class Connections:
    """At most `size` clients, made on first need by `make` and lent most-recently-returned first,
    so the connections in use stay warm and the others may idle out."""

    def __init__(self, size: int, make: Callable[[], httpx.Client]) -> None:
        self.size = max(1, size)
        self._make = make
        self._idle: list[httpx.Client] = []
        self._all: list[httpx.Client] = []
        self._ready = threading.Condition()
        self._closed = False

    @contextlib.contextmanager
    def borrow(self) -> Iterator[httpx.Client]:
        """A client for one request; waits while all `size` are lent."""
        client = self._take()
        try:
            yield client
        finally:
            with self._ready:
                self._idle.append(client)
                self._ready.notify()

    def _take(self) -> httpx.Client:
        with self._ready:
            while True:
                if self._closed:
                    raise RuntimeError("the API client is closed")
                if self._idle:
                    return self._idle.pop()
                if len(self._all) < self.size:
                    client = self._make()
                    self._all.append(client)
                    return client
                self._ready.wait()

    @property
    def made(self) -> int:
        """Clients made so far (each holds at most one connection)."""
        return len(self._all)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            clients, self._all, self._idle = self._all, [], []
            self._ready.notify_all()
        for client in clients:
            client.close()
