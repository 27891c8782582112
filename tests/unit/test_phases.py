"""Phase timing: run order, carving history out of extract, and nothing counted twice."""

from __future__ import annotations

import pytest

from approvalmax_pipeline.pipelines.warehouse.phases import Phases

from ..fake_clock import FakeClock


def test_phases_are_in_run_order_and_add_up() -> None:
    clock = FakeClock()
    phases = Phases(clock)
    with phases.timed("load"):
        clock.advance(2.0)
    with phases.timed("extract"):
        clock.advance(5.0)
    with phases.timed("load"):  # a second load (a retried step) adds to the first
        clock.advance(0.5)
    assert phases.seconds() == {"extract": 5.0, "load": 2.5}


def test_history_is_carved_out_of_extract_never_beyond_it() -> None:
    clock = FakeClock()
    phases = Phases(clock)
    with phases.timed("extract"):
        clock.advance(4.0)
    phases.carve("history", out_of="extract", seconds=1.5)
    assert phases.seconds() == {"extract": 2.5, "history": 1.5}
    phases.carve("history", out_of="extract", seconds=10.0)
    assert phases.seconds() == {"extract": 0.0, "history": 4.0}
    phases.carve("history", out_of="normalize", seconds=1.0)  # a phase not reached: nothing to carve
    assert sum(phases.seconds().values()) == 4.0


def test_a_phase_that_raised_is_still_counted_and_unknown_names_are_refused() -> None:
    clock = FakeClock()
    phases = Phases(clock)
    with pytest.raises(RuntimeError), phases.timed("views"):
        clock.advance(1.0)
        raise RuntimeError("boom")
    assert phases.seconds() == {"views": 1.0}
    with pytest.raises(ValueError, match="unknown phase"):
        phases.add("lunch", 1.0)
