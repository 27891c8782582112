"""Run one producer per company in worker threads and yield their output on the caller's thread.

dlt state may only be touched on the extract thread, so workers only fetch; the caller
sees every page, then exactly one Done or Failed per company, and updates cursors itself.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_POLL = 0.2


@dataclass(frozen=True)
class Item(Generic[T]):
    key: str
    value: T


@dataclass(frozen=True)
class Done:
    key: str


@dataclass(frozen=True)
class Failed:
    key: str
    error: BaseException


Event = Item[T] | Done | Failed


def fan_in(
    producers: Mapping[str, Callable[[], Iterator[T]]], workers: int, buffer: int = 8
) -> Iterator[Event[T] | None]:
    """Yield items as producers make them, at most `buffer` waiting (memory stays flat).
    Yield None whenever nothing is ready instead of waiting: dlt then turns to its other
    resources, so every resource's requests are under way at once.
    Closing the iterator early stops the workers at their next item."""
    if not producers:
        return
    events: queue.Queue[Event[T]] = queue.Queue(maxsize=max(1, buffer))
    stop = threading.Event()
    pending: queue.SimpleQueue[str] = queue.SimpleQueue()
    for key in producers:
        pending.put(key)

    def put(event: Event[T]) -> bool:
        while not stop.is_set():
            try:
                events.put(event, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        while not stop.is_set():
            try:
                key = pending.get_nowait()
            except queue.Empty:
                return
            try:
                for value in producers[key]():
                    if not put(Item(key, value)):
                        return
            except BaseException as exc:  # handed to the caller, who decides what is fatal
                put(Failed(key, exc))
                continue
            put(Done(key))

    threads = [
        threading.Thread(target=work, name=f"approvalmax-fetch-{i}", daemon=True)
        for i in range(min(workers, len(producers)))
    ]
    for thread in threads:
        thread.start()
    finished = 0
    try:
        while finished < len(producers):
            try:
                event = events.get_nowait()
            except queue.Empty:
                yield None
                continue
            if isinstance(event, Done | Failed):
                finished += 1
            yield event
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
