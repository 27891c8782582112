"""The shared rate budget: processes pacing one client id together stay within one window."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from approvalmax_pipeline.sources.approvalmax.pacing import CompanyPacer
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


def test_a_failing_budget_leaves_the_process_pacing_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    budget = SqliteRateBudget(tmp_path / "b.sqlite")
    pacer = CompanyPacer(2, 60, shared=budget)
    budget.close()  # any use now raises
    first = pacer.acquire("c")
    pacer.done(first)
    assert pacer.shared is None
    assert "pacing this process on its own" in caplog.text
