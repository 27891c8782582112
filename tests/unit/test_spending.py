"""The listener spends its share of a company's budget evenly: a batch's calls set when that
company's next batch may start, other companies are not held back, and pacing off defers nothing."""

from __future__ import annotations

from approvalmax_pipeline.pipelines.webhooks.spending import Spending

from ..fake_clock import FakeClock


def test_a_batchs_calls_defer_that_companys_next_batch_only() -> None:
    clock = FakeClock(slept=[])
    spending = Spending(100, 60.0, clock, share=0.8)  # 0.75 s a call
    spending.spent(clock.monotonic(), {"a": 7, "b": 1})
    clock.t += 1.0
    waiting, wait = spending.deferred()
    assert waiting == {"a"}
    assert abs(wait - 4.25) < 1e-9  # 7 calls x 0.75 s, less the second gone by
    clock.t += 4.25
    assert spending.deferred() == (frozenset(), 0.0)


def test_pacing_off_never_defers() -> None:
    clock = FakeClock(slept=[])
    spending = Spending(0, 60.0, clock)
    spending.spent(clock.monotonic(), {"a": 1_000})
    assert spending.deferred() == (frozenset(), 0.0)
