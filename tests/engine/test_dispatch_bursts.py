"""The dispatcher tells a burst of events (absorbed first, runs after) from a steady trickle."""

from __future__ import annotations

import time
from typing import Any, cast

from qualflow.engine.dispatch import Dispatcher


def dispatcher() -> Dispatcher:
    # Only the arrival bookkeeping is exercised: no services needed.
    return Dispatcher(cast(Any, None), burst_rate=300.0)


def test_a_burst_of_recorded_events_counts_as_a_burst() -> None:
    d = dispatcher()
    for _ in range(10):
        d.wake(40)  # 400 events within the rate window
    assert d._arrival_rate(time.monotonic()) >= 300.0


def test_a_trickle_does_not() -> None:
    d = dispatcher()
    d.wake(1)
    d.wake(1)
    assert d._arrival_rate(time.monotonic()) < 300.0


def test_old_arrivals_are_forgotten() -> None:
    d = dispatcher()
    d.wake(1000)
    assert d._arrival_rate(time.monotonic() + 10.0) == 0.0
