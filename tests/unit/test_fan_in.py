"""Fan-in of per-company producers: every item delivered, failures isolated, early stop."""

import threading
import time
from collections.abc import Iterator

from approvalmax_pipeline.sources.approvalmax.fan_in import Done, Event, Failed, Item, fan_in


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


def events_of(iterator: Iterator[Event[int] | None]) -> list[Event[int]]:
    """Every event, leaving out the Nones that say nothing is ready yet."""
    return [event for event in iterator if event is not None]


def test_every_item_then_one_done_per_producer() -> None:
    events = events_of(fan_in({"a": lambda: numbers(5), "b": lambda: numbers(3)}, workers=2, buffer=1))
    items = [(e.key, e.value) for e in events if isinstance(e, Item)]
    assert sorted(items) == sorted([("a", i) for i in range(5)] + [("b", i) for i in range(3)])
    done = [e.key for e in events if isinstance(e, Done)]
    assert sorted(done) == ["a", "b"]
    for key in ("a", "b"):  # Done comes after that producer's last item
        last_item = max(i for i, e in enumerate(events) if isinstance(e, Item) and e.key == key)
        assert events.index(Done(key)) > last_item


def test_a_failing_producer_does_not_stop_the_others() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("boom")

    events = events_of(fan_in({"bad": broken, "good": lambda: numbers(4)}, workers=2))
    failed = [e for e in events if isinstance(e, Failed)]
    assert [(f.key, str(f.error)) for f in failed] == [("bad", "boom")]
    assert Done("good") in events and Done("bad") not in events


def test_producers_run_concurrently() -> None:
    barrier = threading.Barrier(3, timeout=5)

    def waits() -> Iterator[int]:
        barrier.wait()  # only passes if three producers run at once
        yield 1

    events = events_of(fan_in({k: waits for k in "abc"}, workers=3))
    assert sum(isinstance(e, Done) for e in events) == 3


def test_closing_early_stops_workers() -> None:
    produced: list[int] = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    iterator = fan_in({"x": endless}, workers=1, buffer=2)
    next(event for event in iterator if event is not None)
    iterator.close()
    time.sleep(0.5)
    count = len(produced)
    time.sleep(0.3)
    assert len(produced) == count < 10


def test_no_producers_no_events() -> None:
    assert list(fan_in({}, workers=4)) == []


def test_nothing_ready_yields_none_instead_of_waiting() -> None:
    release = threading.Event()

    def slow() -> Iterator[int]:
        release.wait(5)
        yield 7

    iterator = fan_in({"s": slow}, workers=1)
    assert next(iterator) is None  # the caller may turn to other work meanwhile
    release.set()
    assert events_of(iterator) == [Item("s", 7), Done("s")]
