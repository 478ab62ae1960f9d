"""Waits, deadlines and rates given as NaN are refused at once: every comparison with NaN is
false, so a NaN deadline would never pass and a poll would never end."""

from __future__ import annotations

import pytest

from qualflow.qualtrics import RateLimiter
from qualflow.qualtrics.resources.exports import _Poller
from qualflow.qualtrics.resources.responses import _check_wait

NAN = float("nan")


@pytest.mark.parametrize(("wait", "poll_interval"), [(NAN, 1.0), (0.0, NAN), (-1.0, 1.0)])
def test_a_response_wait_that_is_not_a_number_is_refused(wait: float, poll_interval: float) -> None:
    with pytest.raises(ValueError, match="wait"):
        _check_wait(wait, poll_interval)


@pytest.mark.parametrize(
    ("interval", "max_interval", "timeout"),
    [(NAN, 5.0, None), (1.0, NAN, None), (1.0, 5.0, NAN), (1.0, 5.0, 0.0)],
)
def test_an_export_poll_that_is_not_a_number_is_refused(
    interval: float, max_interval: float, timeout: float | None
) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        _Poller(interval, max_interval, timeout)


def test_a_rate_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(ValueError, match="requests_per_minute"):
        RateLimiter(NAN)
