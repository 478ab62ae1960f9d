"""Client-side rate limiting: stay under the brand-wide limit before Qualtrics enforces it.

Qualtrics allows 3,000 API requests per minute per brand, across every token and client. A
:class:`RateLimiter` is a token bucket that can be shared by several clients (the hub uses one
per connection) and by sync and async code at the same time: taking a token is a reservation
made under a short thread lock, and the caller then sleeps (``time.sleep`` or ``anyio.sleep``)
outside the lock, so threads never block the event loop and tasks are served first come, first
served.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import anyio

from qualflow.qualtrics.errors import RateLimiterBusy

__all__ = [
    "DEFAULT_REQUESTS_PER_MINUTE",
    "Limiter",
    "RateLimiter",
    "Unlimited",
    "brand_limiter",
    "limiter_busy",
]

DEFAULT_REQUESTS_PER_MINUTE = 3000


@runtime_checkable
class Limiter(Protocol):
    """What the clients need from a rate limiter; implement it to plug in a distributed one."""

    def acquire(self, max_wait: float | None = None) -> None:
        """Block the calling thread until one request may be sent.

        With ``max_wait``, raise :class:`~qualflow.qualtrics.errors.RateLimiterBusy` at once
        (taking nothing) when the request would have to wait longer than that many seconds.
        """

    async def acquire_async(self, max_wait: float | None = None) -> None:
        """Wait (without blocking the event loop) until one request may be sent; ``max_wait``
        as for :meth:`acquire`."""

    def pause(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` (the server said it is overloaded)."""


_brand_limiters: weakref.WeakValueDictionary[tuple[str, float], RateLimiter] = (
    weakref.WeakValueDictionary()
)
_brand_limiters_lock = threading.Lock()


def brand_limiter(brand: str, requests_per_minute: float) -> RateLimiter:
    """This process's one limiter for ``brand`` at ``requests_per_minute``: every client made
    without a limiter of its own for the same brand shares it, so that together they keep to
    the brand's quota. It lives as long as some client uses it."""
    key = (brand, float(requests_per_minute))
    with _brand_limiters_lock:
        limiter = _brand_limiters.get(key)
        if limiter is None:
            limiter = RateLimiter(requests_per_minute)
            _brand_limiters[key] = limiter
        return limiter


def limiter_busy(wait: float, max_wait: float, requests_per_minute: float) -> RateLimiterBusy:
    """The error for a request the limiter would hold ``wait`` s, more than ``max_wait``."""
    unit = "request" if requests_per_minute == 1 else "requests"
    return RateLimiterBusy(
        f"the rate limit of {requests_per_minute:g} {unit} per minute would hold this request "
        f"{wait:.0f} s (at most {max_wait:g} s allowed); nothing was sent, try again later",
        retry_after=wait,
    )


class RateLimiter:
    """A token bucket: ``requests_per_minute`` sustained, bursts of up to ``burst`` requests.

    Thread-safe and task-safe; one instance may serve any number of :class:`Client` and
    :class:`AsyncClient` objects. When any of them gets a 429 with ``Retry-After``, it calls
    :meth:`pause` so the others back off too instead of hammering the brand's quota.
    """

    def __init__(
        self,
        requests_per_minute: float = DEFAULT_REQUESTS_PER_MINUTE,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not requests_per_minute > 0:  # NaN too
            raise ValueError("requests_per_minute must be positive")
        if burst is not None and burst < 1:
            raise ValueError("burst must be at least 1")
        self.requests_per_minute = float(requests_per_minute)
        # A twentieth of the minute's quota (3 s of traffic) absorbs bursts such as a page walk
        # without letting one caller spend the whole minute at once.
        self.burst = burst if burst is not None else max(1, int(requests_per_minute // 20))
        self._rate = self.requests_per_minute / 60.0
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._updated = clock()
        self._paused_until = 0.0

    def __repr__(self) -> str:
        return f"RateLimiter(requests_per_minute={self.requests_per_minute:g}, burst={self.burst})"

    def reserve(self, max_wait: float | None = None) -> float:
        """Take one token now and return how many seconds the caller must wait before sending.

        With ``max_wait``, a wait longer than that takes no token and raises
        :class:`RateLimiterBusy` instead.
        """
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(float(self.burst), self._tokens + elapsed * self._rate)
            # During a pause `_updated` lies in the future: refilling starts when the pause ends.
            self._updated = max(self._updated, now)
            self._tokens -= 1.0
            ready_at = now if self._tokens >= 0 else self._updated - self._tokens / self._rate
            delay = max(0.0, ready_at - now, self._paused_until - now)
            if max_wait is not None and delay > max_wait:
                self._tokens += 1.0
                raise limiter_busy(delay, max_wait, self.requests_per_minute)
            return delay

    def acquire(self, max_wait: float | None = None) -> None:
        delay = self.reserve(max_wait)
        if delay > 0:
            time.sleep(delay)

    async def acquire_async(self, max_wait: float | None = None) -> None:
        delay = self.reserve(max_wait)
        if delay > 0:
            await anyio.sleep(delay)

    def pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            now = self._clock()
            self._paused_until = max(self._paused_until, now + seconds)
            # Whatever burst had accumulated is void: the server just said the quota is spent.
            self._tokens = min(self._tokens, 0.0)
            self._updated = max(self._updated, self._paused_until)


class Unlimited:
    """A limiter that never waits (for tests, or when another layer already limits)."""

    def acquire(self, max_wait: float | None = None) -> None:
        return None

    async def acquire_async(self, max_wait: float | None = None) -> None:
        return None

    def pause(self, seconds: float) -> None:
        return None
