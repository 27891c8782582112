import threading
import time

import httpx
import pytest

from approvalmax_pipeline.sources.approvalmax.connections import Connections


def test_lends_each_client_to_one_thread_at_a_time_and_makes_at_most_size() -> None:
    made: list[httpx.Client] = []
    connections = Connections(3, lambda: made.append(httpx.Client()) or made[-1])
    holders: dict[int, int] = {}
    peak = [0]
    lock = threading.Lock()
    start = threading.Barrier(10)

    def work() -> None:
        start.wait()  # all ten at once
        for _ in range(20):
            with connections.borrow() as client:
                with lock:
                    holders[id(client)] = holders.get(id(client), 0) + 1
                    peak[0] = max(peak[0], sum(holders.values()))
                    assert holders[id(client)] == 1  # nobody else holds it
                time.sleep(0.001)
                with lock:
                    holders[id(client)] -= 1

    threads = [threading.Thread(target=work) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 3 and connections.made == len(made) == 3
    connections.close()
    assert all(client.is_closed for client in made)


def test_lends_the_most_recently_returned_client_first() -> None:
    connections = Connections(4, httpx.Client)
    with connections.borrow() as first, connections.borrow() as second:
        pass
    with connections.borrow() as again:
        assert again is first  # returned last (the with exits inner first), so still warm
    assert second is not first and connections.made == 2
    connections.close()
    with pytest.raises(RuntimeError, match="closed"), connections.borrow():
        pass
