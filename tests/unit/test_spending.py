"""The listener spends its share of a company's budget evenly: a batch's calls set when that
company's next batch may start, other companies are not held back, and pacing off defers nothing."""

from __future__ import annotations

from approvalmax_pipeline.pipelines.webhooks.queue import QueuedEvent
from approvalmax_pipeline.pipelines.webhooks.spending import Spending
from approvalmax_pipeline.sources.approvalmax.webhooks import WebhookEvent

from ..fake_clock import FakeClock


def queued(company: str, n: int) -> QueuedEvent:
    return QueuedEvent(n, WebhookEvent(company, f"r{n}", "XeroBill", "Approved", ""), 0.0, 0)


def test_a_batchs_calls_defer_that_companys_next_batch_only() -> None:
    clock = FakeClock(slept=[])
    spending = Spending(100, 60.0, clock, share=0.8)  # 0.75 s a call
    spending.spent(clock.monotonic(), {"a": 7})
    clock.t += 1.0
    ready, wait = spending.due([queued("a", 1), queued("b", 2)])
    assert [q.event.company_id for q in ready] == ["b"]
    assert abs(wait - 4.25) < 1e-9  # 7 calls x 0.75 s, less the second gone by
    clock.t += 4.25
    ready, wait = spending.due([queued("a", 1)])
    assert len(ready) == 1 and wait == 0.0


def test_pacing_off_never_defers() -> None:
    clock = FakeClock(slept=[])
    spending = Spending(0, 60.0, clock)
    spending.spent(clock.monotonic(), {"a": 1_000})
    assert spending.due([queued("a", 1)]) == ([queued("a", 1)], 0.0)
