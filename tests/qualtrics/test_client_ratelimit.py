"""The shared token-bucket limiter (fake clock: no timing assertions)."""

from __future__ import annotations

import threading

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qualflow.qualtrics.errors import RateLimiterBusy
from qualflow.qualtrics.ratelimit import Limiter, RateLimiter, Unlimited


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_sustained_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, burst=3, clock=clock)  # one per second
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    # The next callers queue up one second apart, first come first served.
    assert limiter.reserve() == pytest.approx(1.0)
    assert limiter.reserve() == pytest.approx(2.0)
    clock.now += 2.0
    assert limiter.reserve() == pytest.approx(1.0)


def test_default_is_the_brand_limit() -> None:
    limiter = RateLimiter()
    assert limiter.requests_per_minute == 3000
    assert limiter.burst == 150


def test_tokens_refill_up_to_burst_only() -> None:
    clock = FakeClock()
    limiter = RateLimiter(600, burst=5, clock=clock)
    clock.now += 3600
    assert [limiter.reserve() for _ in range(5)] == [0.0] * 5
    assert limiter.reserve() > 0


def test_pause_holds_everyone_back_then_resumes_without_a_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, burst=10, clock=clock)
    limiter.pause(30)
    assert limiter.reserve() == pytest.approx(30.0 + 1.0)
    clock.now += 40
    # Ten seconds after the pause: ten tokens refilled, minus the one already reserved.
    waits = [limiter.reserve() for _ in range(10)]
    assert waits[:9] == [0.0] * 9
    assert waits[9] > 0


def test_shared_between_threads_counts_every_reservation() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, burst=800, clock=clock)
    results: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(100):
            wait = limiter.reserve()
            with lock:
                results.append(wait)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(0.0) == 800
    assert limiter.reserve() == pytest.approx(1.0)


def test_async_and_sync_callers_share_one_limiter() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, burst=21, clock=clock)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(limiter.acquire_async)
        await anyio.to_thread.run_sync(limiter.acquire)

    anyio.run(main)
    # Tasks and a thread together spent the whole burst: the next caller waits a second.
    assert limiter.reserve() == pytest.approx(1.0)


def test_limiters_satisfy_the_protocol() -> None:
    assert isinstance(RateLimiter(), Limiter)
    assert isinstance(Unlimited(), Limiter)


@pytest.mark.parametrize("kwargs", [{"requests_per_minute": 0}, {"burst": 0}])
def test_bad_limits_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RateLimiter(**kwargs)


@given(
    rpm=st.integers(min_value=1, max_value=6000),
    burst=st.integers(min_value=1, max_value=20),
    arrivals=st.lists(
        st.tuples(st.floats(min_value=0, max_value=5, allow_nan=False), st.integers(1, 5)),
        min_size=1,
        max_size=40,
    ),
)
def test_grants_never_exceed_burst_plus_rate_and_are_fifo(
    rpm: int, burst: int, arrivals: list[tuple[float, int]]
) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm, burst=burst, clock=clock)
    rate = rpm / 60.0
    ready: list[float] = []
    for gap, count in arrivals:
        clock.now += gap
        for _ in range(count):
            wait = limiter.reserve()
            assert wait >= 0
            ready.append(clock.now + wait)
    assert ready == sorted(ready)  # first come, first served
    for i in range(len(ready)):
        for j in range(i, len(ready)):
            granted = j - i + 1
            assert granted <= burst + rate * (ready[j] - ready[i]) + 1e-6


def test_a_wait_beyond_max_wait_is_refused_without_taking_a_token() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, burst=1, clock=clock)  # one a second
    assert limiter.reserve(max_wait=0.5) == 0.0
    with pytest.raises(RateLimiterBusy) as info:
        limiter.reserve(max_wait=0.5)
    assert info.value.retry_after == pytest.approx(1.0)
    assert not info.value.retriable
    assert "60 requests per minute" in str(info.value)
    assert "nothing was sent" in str(info.value)
    # The refused caller took nothing: the next one still waits one second, not two.
    assert limiter.reserve(max_wait=1.0) == pytest.approx(1.0)
    assert limiter.reserve() == pytest.approx(2.0)


def test_a_pause_longer_than_max_wait_is_refused_with_its_length() -> None:
    clock = FakeClock()
    limiter = RateLimiter(600, clock=clock)
    limiter.pause(30)
    with pytest.raises(RateLimiterBusy) as info:
        anyio.run(lambda: limiter.acquire_async(max_wait=10))
    # The pause, then a tenth of a second for a token: the pause voided the burst.
    assert info.value.retry_after == pytest.approx(30.1)
    with pytest.raises(RateLimiterBusy):
        limiter.acquire(max_wait=10)
    clock.now += 31
    limiter.acquire(max_wait=0)  # the pause is over and a token refilled: nothing sleeps


def test_unlimited_never_refuses() -> None:
    Unlimited().acquire(max_wait=0)
    anyio.run(lambda: Unlimited().acquire_async(max_wait=0))


def test_clients_of_one_brand_share_one_bucket_by_default() -> None:
    from qualflow.qualtrics import AsyncClient, Client, OAuthCredentials

    acme = Client(base_url="https://acme.qualtrics.com", api_token="A" * 40)
    also_acme = AsyncClient(base_url="https://acme.qualtrics.com/API/v3", api_token="B" * 40)
    other = Client(base_url="https://other.qualtrics.com", api_token="A" * 40)
    slower = Client(base_url="https://acme.qualtrics.com", api_token="A" * 40,
                    requests_per_minute=600)  # fmt: skip
    assert acme.rate_limiter is also_acme.rate_limiter
    assert other.rate_limiter is not acme.rate_limiter
    assert slower.rate_limiter is not acme.rate_limiter
    # A bare datacenter host serves many brands: there the credentials tell them apart.
    first = Client(datacenter="iad1", api_token="A" * 40)
    same = Client(base_url="https://iad1.qualtrics.com", api_token="A" * 40)
    second = Client(datacenter="iad1", oauth=OAuthCredentials("client", "secret"))
    assert first.rate_limiter is same.rate_limiter
    assert second.rate_limiter is not first.rate_limiter
    own = RateLimiter(100)
    assert Client(base_url="https://acme.qualtrics.com", api_token="A" * 40,
                  rate_limiter=own).rate_limiter is own  # fmt: skip
