"""The listener's two queues keep one contract (SQLite file, PostgreSQL tables), and the shared one's
claims: no two consumers hold one event or one document, and a consumer that dies lets go at once."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg2
import pytest

from approvalmax_pipeline.pipelines.webhooks.postgres_queue import PostgresQueue
from approvalmax_pipeline.pipelines.webhooks.queue import MAX_ATTEMPTS, EventQueue
from approvalmax_pipeline.pipelines.webhooks.queue_location import open_queue
from approvalmax_pipeline.sources.approvalmax.errors import ConfigError
from approvalmax_pipeline.sources.approvalmax.webhooks import WebhookEvent

from ..conftest import REPO
from ..postgres_server import start_postgres

COMPANY = "5df4a571-a352-4955-8a43-004d862dbda5"


def event(request_id: str) -> WebhookEvent:
    return WebhookEvent(COMPANY, request_id, "XeroBill", "Approved", "t")


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "q.sqlite")
    return str(request.getfixturevalue("postgres_db"))


def test_events_that_keep_failing_go_last_and_are_given_up_at_max_attempts(location: str) -> None:
    queue = open_queue(location)
    queue.append([event("stuck")])
    (stuck,) = queue.take(10)
    queue.failed([stuck], "403")
    queue.append([event("fresh")])
    assert [q.event.request_id for q in queue.take(1)] == ["fresh"]  # new events are not held back
    for _ in range(MAX_ATTEMPTS - 2):
        assert queue.failed([queue.take(10)[-1]], "403") == []
    given_up = queue.failed([queue.take(10)[-1]], "403")
    assert [q.event.request_id for q in given_up] == ["stuck"]
    assert [q.event.request_id for q in queue.take(10)] == ["fresh"]
    queue.close()


def test_a_deferred_company_is_left_out_so_others_newer_events_are_taken(location: str) -> None:
    """The listener skips a company whose budget share is spent: its backlog, however long, holds
    back no other company's events, and stays queued (unclaimed) for later."""
    queue = open_queue(location)
    busy = "00000000-0000-0000-0000-00000000000b"
    queue.append([WebhookEvent(busy, f"r{n}", "XeroBill", "Approved", "t") for n in range(5)])
    queue.append([event("other")])
    assert [q.event.request_id for q in queue.take(3, skip={busy})] == ["other"]
    assert [q.event.company_id for q in queue.take(3)] == [busy] * 3  # not skipped: oldest first
    queue.close()


def test_queued_events_are_durable_for_another_connection_until_done(location: str) -> None:
    first = open_queue(location)
    first.append([event("a")])
    other = open_queue(location)  # as a restarted process (or another replica) would open it
    (queued,) = other.take(10)
    assert queued.event.request_id == "a" and other.depth() == 1
    other.failed([queued], "the API did not answer")
    (again,) = other.take(10)
    assert again.attempts == 1
    other.done([again], {again.id: "loaded"})
    assert first.depth() == 0 and len(first.latencies()) == 1
    first.close()
    other.close()


def test_a_batch_part_done_part_failed_and_one_never_reported_as_the_loader_leaves_them(location: str) -> None:
    queue, other = open_queue(location), open_queue(location)
    queue.append([event("a"), event("b"), event("c")])
    a, b, c = queue.take(10)
    queue.done([a, b], {a.id: "loaded", b.id: "deleted"})  # the loader's order: done, then failed
    queue.failed([c], "503")
    assert other.depth() == 1 and len(other.latencies()) == 2
    (again,) = queue.take(10)  # a warehouse fault: the batch is reported neither done nor failed
    assert (again.event.request_id, again.attempts) == ("c", 1)
    (still,) = queue.take(10)  # the next batch takes it again, its attempts unchanged
    assert (still.id, still.attempts) == (again.id, 1)
    queue.close()
    other.close()


def test_two_consumers_never_take_one_event_or_one_document(postgres_db: str) -> None:
    a, b = PostgresQueue(postgres_db), PostgresQueue(postgres_db)
    a.append([event(f"doc-{i}") for i in range(6)])
    taken_a = a.take(3)
    taken_b = b.take(10)
    assert {q.id for q in taken_a}.isdisjoint(q.id for q in taken_b)
    assert len(taken_a) + len(taken_b) == 6
    # a newer event of a document `a` is loading waits for `a`: an older answer must not land last
    held = taken_a[0].event.request_id
    b.done(taken_b, {})
    b.append([event(held)])
    assert b.take(10) == []
    a.done(taken_a, {})
    assert [q.event.request_id for q in b.take(10)] == [held]
    a.close()
    b.close()


def test_consumers_in_threads_load_each_event_once_and_each_document_by_one_at_a_time(postgres_db: str) -> None:
    PostgresQueue(postgres_db).append([event(f"doc-{i % 12}") for i in range(240)])
    loaded: Counter[int] = Counter()
    holders: dict[str, int] = {}
    overlaps: list[str] = []
    guard = threading.Lock()

    def consume(number: int) -> None:
        queue = PostgresQueue(postgres_db)
        while True:
            batch = queue.take(7)
            if not batch:
                if queue.depth() == 0:
                    break
                time.sleep(0.01)  # the rest is another consumer's
                continue
            documents = {q.event.request_id for q in batch}
            with guard:
                overlaps.extend(d for d in documents if d in holders)
                holders.update(dict.fromkeys(documents, number))
                loaded.update(q.id for q in batch)
            time.sleep(0.01)  # the load
            with guard:
                for document in documents:
                    del holders[document]
            queue.done(batch, {})
        queue.close()

    threads = [threading.Thread(target=consume, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == [] and len(loaded) == 240 and set(loaded.values()) == {1}


def test_a_consumer_killed_with_its_claim_releases_it_at_once(postgres_db: str) -> None:
    survivor = PostgresQueue(postgres_db)
    survivor.append([event("a"), event("b")])
    code = (
        "import sys, time\n"
        "from approvalmax_pipeline.pipelines.webhooks.postgres_queue import PostgresQueue\n"
        "queue = PostgresQueue(sys.argv[1])\n"
        "print(sorted(q.id for q in queue.take(10)), flush=True)\n"
        "time.sleep(120)\n"
    )
    victim = subprocess.Popen([sys.executable, "-c", code, postgres_db], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert victim.stdout is not None
        claimed = victim.stdout.readline()
        assert survivor.take(10) == []  # held by the other consumer
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        deadline = time.monotonic() + 30  # PostgreSQL ends the session when its socket closes
        taken: list[int] = []
        while not taken and time.monotonic() < deadline:
            taken = sorted(q.id for q in survivor.take(10))
        assert str(taken) == claimed.strip() and len(taken) == 2
        assert all(q.attempts == 0 for q in survivor.take(10))  # a death is no attempt of the events'
    finally:
        if victim.poll() is None:
            victim.kill()
        survivor.close()


def test_a_queue_whose_server_restarts_refuses_appends_meanwhile_then_carries_on() -> None:
    server = start_postgres()  # of its own: this test stops it
    try:
        queue = PostgresQueue(server.dsn)
        queue.append([event("a")])
        (taken,) = queue.take(10)
        server.pause()  # a restart or a failover: open connections are cut, the claim with them
        with pytest.raises(psycopg2.Error):
            queue.append([event("b")])  # the receiver answers 503, and the sender sends it again
        assert queue.take(10) == []  # logged; the loader waits and asks again
        queue.done([taken], {})  # logged: not reported, so `a` loads again (harmless)
        server.resume()
        queue.append([event("b")])
        assert sorted(q.event.request_id for q in queue.take(10)) == ["a", "b"]
        queue.close()
    finally:
        server.stop()


def test_an_unreachable_queue_is_one_line_without_the_password(postgres_db: str) -> None:
    url = re.sub(r":\d+/", ":9/", postgres_db.replace("postgres:postgres@", "postgres:s3cret-pw@"))  # port 9: nothing
    with pytest.raises(
        ConfigError, match=r"^cannot use the webhook queue postgresql://postgres@127\.0\.0\.1:9/"
    ) as info:
        open_queue(url)
    assert "s3cret-pw" not in str(info.value) and "\n" not in str(info.value)


def test_both_kinds_keep_the_contract_the_loader_relies_on(location: str) -> None:
    queue: EventQueue = open_queue(location)
    queue.append([])
    assert queue.take(10) == [] and queue.depth() == 0 and queue.latencies() == []
    queue.close()
