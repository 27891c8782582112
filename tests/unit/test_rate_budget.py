"""The shared rate budget: processes pacing one client id together stay within one window."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from approvalmax_pipeline.sources.approvalmax.pacing import ALONE_SECONDS, CompanyPacer
from approvalmax_pipeline.sources.approvalmax.rate_budget import (
    STALE_SECONDS,
    SqliteRateBudget,
    budget_location,
    open_rate_budget,
)

LIMIT, WINDOW = 3, 0.5


def _requests(location: str, start: float, count: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """One process: `count` requests for company `c`, each answered 20 ms after it went."""
    pacer = CompanyPacer(LIMIT, WINDOW, shared=open_rate_budget(location, "family"))
    time.sleep(max(0.0, start - time.time()))
    sent = []
    for _ in range(count):
        ticket = pacer.acquire("c")
        went = time.time()
        time.sleep(0.02)
        pacer.done(ticket)
        sent.append((went, time.time()))
    pacer.close()
    out.put(sent)


def _busiest_window(requests: list[tuple[float, float]]) -> int:
    """The most requests a server saw in any WINDOW: each counted from when it went."""
    went = sorted(start for start, _end in requests)
    return max(sum(1 for other in went if t <= other < t + WINDOW) for t in went)


def processes_share_one_window(location: str) -> None:
    """Three processes started together on the budget beside `location` (a token store)."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start = time.time() + 1.5  # every process has imported by then
    workers = [context.Process(target=_requests, args=(location, start, 4, out)) for _ in range(3)]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
    every = [request for result in results for request in result]
    assert len(every) == 12
    assert _busiest_window(every) <= LIMIT
    # alone, each would have sent 3 at once: together the 12 take more than 3 windows
    assert max(end for _s, end in every) - min(s for s, _e in every) >= 3 * WINDOW


def test_processes_started_together_share_one_window(tmp_path: Path) -> None:
    processes_share_one_window(str(tmp_path / "tokens.json"))


def test_the_budget_sits_beside_the_token_file(tmp_path: Path) -> None:
    assert budget_location(str(tmp_path / "tokens.json")) == str(tmp_path / "tokens.rate-budget.sqlite")
    assert budget_location("postgresql://u:p@h/db") == "postgresql://u:p@h/db"
    aws = budget_location("aws-secretsmanager://prod/approvalmax?region=eu-west-1")
    assert aws == str(Path("~/.approvalmax/aws-prod_approvalmax.rate-budget.sqlite").expanduser())


def test_a_request_of_a_killed_process_counts_until_it_is_stale(tmp_path: Path) -> None:
    budget = SqliteRateBudget(tmp_path / "b.sqlite")
    assert budget.claim("c", 1, 60)[0] is not None  # never finished: its process died
    ticket, wait = budget.claim("c", 1, 60)
    assert ticket is None and wait > 0
    budget._db.execute("UPDATE requests SET sent = sent - ?", (STALE_SECONDS + 61,))
    assert budget.claim("c", 1, 60)[0] is not None
    budget.close()


def test_companies_have_budgets_of_their_own(tmp_path: Path) -> None:
    budget = SqliteRateBudget(tmp_path / "b.sqlite")
    for company in ("a", "b"):
        ticket, _ = budget.claim(company, 1, 60)
        assert ticket is not None
        budget.finish(ticket)
    assert budget.claim("a", 1, 60)[0] is None
    budget.close()


class FlakyBudget:
    """A shared budget whose first `failures` claims raise, as a restarting database would."""

    def __init__(self, failures: int) -> None:
        self.failures, self.claims = failures, 0

    def claim(self, company: str, limit: int, window: float) -> tuple[int | None, float]:
        self.claims += 1
        if self.claims <= self.failures:
            raise OSError("the budget's server restarted")
        return self.claims, 0.0

    def finish(self, ticket: int) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_failing_budget_paces_the_process_alone_for_a_while_then_is_used_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ..fake_clock import FakeClock

    clock = FakeClock(slept=[])
    budget = FlakyBudget(failures=1)
    pacer = CompanyPacer(2, 60, clock=clock, shared=budget)
    pacer.done(pacer.acquire("c"))  # the budget fails: this process's own window
    pacer.done(pacer.acquire("c"))  # alone for ALONE_SECONDS: the budget is not asked
    assert budget.claims == 1 and "pacing this process on its own" in caplog.text
    clock.t += ALONE_SECONDS
    ticket = pacer.acquire("c")
    assert ticket.shared == 2 and budget.claims == 2  # the shared window again


def test_a_budget_that_cannot_be_opened_leaves_the_run_pacing_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A token folder the run may not write (the token save then fails in its own words) must not
    stop the run here first: the budget is worth having, not worth stopping for."""
    from types import SimpleNamespace

    from approvalmax_pipeline.sources.approvalmax.connector import shared_rate_budget

    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the token folder should be: nothing can be made inside
    settings = SimpleNamespace(
        rate_limit_per_minute=100,
        token_store=str(blocked / "tokens.json"),
        credentials=SimpleNamespace(client_id="c"),
    )
    assert shared_rate_budget(settings) is None  # type: ignore[arg-type]
    assert "pacing this process on its own" in caplog.text
