"""Per-company pacing: at most `limit` requests in any window, companies independent."""

from approvalmax_pipeline.sources.approvalmax.pacing import CompanyPacer

from ..fake_clock import FakeClock as FakeTime


def test_up_to_the_limit_goes_at_once() -> None:
    t = FakeTime()
    pacer = CompanyPacer(3, window=60, clock=t)
    for _ in range(3):
        pacer.done(pacer.acquire("a"))
    assert t.slept == []


def test_the_next_request_waits_for_the_oldest_response_to_leave_the_window() -> None:
    t = FakeTime()
    pacer = CompanyPacer(2, window=60, clock=t)
    pacer.done(pacer.acquire("a"))
    t.t = 10
    pacer.done(pacer.acquire("a"))
    t.t = 20
    pacer.done(pacer.acquire("a"))
    assert t.slept == [40] and t.t == 60


def test_a_request_in_flight_holds_its_place_until_its_response() -> None:
    t = FakeTime()
    pacer = CompanyPacer(1, window=60, clock=t)
    first = pacer.acquire("a")
    t.t = 100  # no response yet: the window must not let a second one through

    def answer_then_sleep(seconds: float) -> None:
        if first.finished == float("inf"):
            t.t = 130
            pacer.done(first)  # the answer arrives at 130; the next may go at 190
        t.slept.append(seconds)
        t.t += seconds

    t.sleep = answer_then_sleep  # type: ignore[method-assign]
    pacer.done(pacer.acquire("a"))
    assert t.t >= 190


def test_companies_have_their_own_budget() -> None:
    t = FakeTime()
    pacer = CompanyPacer(1, window=60, clock=t)
    pacer.done(pacer.acquire("a"))
    pacer.done(pacer.acquire("b"))
    assert t.slept == []


def test_never_more_than_the_limit_in_any_window() -> None:
    t = FakeTime()
    pacer = CompanyPacer(5, window=60, clock=t)
    sent = []
    for _ in range(23):
        ticket = pacer.acquire("a")
        sent.append(t.t)
        t.t += 1.5
        pacer.done(ticket)
    for start in sent:
        assert sum(1 for s in sent if start <= s < start + 60) <= 5


def test_zero_turns_pacing_off() -> None:
    t = FakeTime()
    pacer = CompanyPacer(0, clock=t)
    for _ in range(1000):
        pacer.acquire("a")
    assert t.slept == []
