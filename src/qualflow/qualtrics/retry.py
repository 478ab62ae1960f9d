"""When to repeat a failed request, and how long to wait first.

The decision is pure (no I/O) so the sync and async clients share it: :class:`RetryState` is
asked after each failed attempt and answers with a delay, or ``None`` to give up.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from qualflow.qualtrics.errors import (
    AuthError,
    QualtricsError,
    RateLimited,
    ServerError,
    TransportError,
)

__all__ = [
    "AsyncRetryCallback",
    "RetryCallback",
    "RetryEvent",
    "RetryPolicy",
    "RetryState",
    "parse_retry_after",
]


@dataclass(frozen=True)
class RetryPolicy:
    """How persistently the client repeats requests that failed for a transient reason.

    Retried: HTTP 429, the ``retry_statuses`` (500/502/503/504 by default) and transport errors.
    Waits follow exponential backoff with full jitter (a uniform draw between 0 and
    ``min(max_delay, base_delay * 2**retry)``) unless the server sent ``Retry-After``, which is
    honoured as given. Giving up happens after ``max_attempts`` attempts in all, or when the next
    wait would end after ``max_elapsed`` seconds since the first attempt, or when the server
    asks to wait longer than ``max_retry_after`` — the last error is then raised (a
    :class:`~qualflow.qualtrics.errors.RateLimited` keeps its ``retry_after`` for the caller).

    Non-idempotent requests (POSTs without an ``Idempotency-Key``) are repeated only when the
    server cannot have acted on them: on 429, or when the connection failed before sending.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_elapsed: float = 120.0
    max_retry_after: float = 120.0
    retry_statuses: frozenset[int] = field(default=frozenset({500, 502, 503, 504}))

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        delays = (self.base_delay, self.max_delay, self.max_elapsed, self.max_retry_after)
        # Written so that NaN fails too: a NaN budget is never spent.
        if not all(delay >= 0 for delay in delays):
            raise ValueError("delays must be numbers of seconds, not negative")

    @classmethod
    def never(cls) -> RetryPolicy:
        """A policy that makes exactly one attempt."""
        return cls(max_attempts=1)

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Full-jitter delay before retry number ``retry_number`` (0 for the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** min(retry_number, 32)))
        return (rng or _RNG).uniform(0.0, ceiling)


_RNG = random.Random()


#: RFC 9110 delta-seconds: ASCII digits only (``str.isdigit`` and ``float`` also take "٣",
#: "３" or "²", which no HTTP server means as a number).
_DELTA_SECONDS = re.compile(r"[0-9]+")
#: Not RFC 9110, but some servers send fractional seconds ("1.5"); no sign, exponent or "_".
_FRACTIONAL_SECONDS = re.compile(r"[0-9]+\.[0-9]*|\.[0-9]+")
#: The wait a delta-seconds too large to represent stands for (RFC 9111 §1.2.2 caps cache
#: ages there too); a policy's ``max_retry_after`` is far below it, so the client gives up.
MAX_RETRY_AFTER = float(2**31)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Returns ``None`` for a missing or unparseable value (anything but ASCII digits, with an
    optional fraction, or a date), never a negative number (a date in the past means "now"),
    at most :data:`MAX_RETRY_AFTER`, and never raises.
    """
    if value is None:
        return None
    # Optional whitespace in HTTP is spaces and tabs, not every Unicode space.
    text = value.strip(" \t")
    if not text or not text.isascii():
        return None
    if _DELTA_SECONDS.fullmatch(text) or _FRACTIONAL_SECONDS.fullmatch(text):
        # float() of a digit string has no length limit (int() has) and never overflows.
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = now or datetime.now(UTC)
    return min(max(0.0, (when - reference).total_seconds()), MAX_RETRY_AFTER)


@dataclass(frozen=True)
class RetryEvent:
    """A failed attempt the client is about to repeat: what a client's ``on_retry`` gets.

    ``attempt`` is the number of the attempt that failed (1 for the first) and ``delay`` the
    seconds the client waits before the next one. ``method`` and ``path`` name the request
    (``path`` is the URL's path, without host or query: ``/API/v3/surveys``,
    ``/oauth2/token``). ``status_code`` is the HTTP status of the failed attempt, ``None`` when
    no answer came (a network error or timeout); ``error`` is the failure itself, raised if the
    retries do not help.
    """

    attempt: int
    delay: float
    method: str
    path: str
    status_code: int | None
    error: QualtricsError

    @property
    def reason(self) -> str:
        """Why the attempt failed, in a few words: ``HTTP 429``, ``network error``."""
        if self.status_code is not None:
            return f"HTTP {self.status_code}"
        if isinstance(self.error, TransportError):
            return "network error"
        return type(self.error).__name__


#: The type of ``Client(on_retry=…)``: called (in the thread of the request) before each wait
#: for a retry; an exception it raises ends the request with that exception.
RetryCallback = Callable[[RetryEvent], None]
#: ``AsyncClient(on_retry=…)``: the same, or an ``async def`` (awaited before the wait).
AsyncRetryCallback = Callable[[RetryEvent], Awaitable[None] | None]


class RetryState:
    """The retry bookkeeping of one logical request (all of its attempts)."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        idempotent: bool,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.idempotent = idempotent
        self.attempts = 0
        self._clock = clock
        self._rng = rng
        self._started = clock()

    def start_attempt(self) -> None:
        self.attempts += 1

    def is_retriable(self, error: QualtricsError) -> bool:
        """Whether ``error`` is worth repeating for this request at all (ignoring budgets)."""
        if isinstance(error, RateLimited):
            return True
        if isinstance(error, TransportError):
            return self.idempotent or not error.request_sent
        if isinstance(error, ServerError):
            return self.idempotent and error.status_code in self.policy.retry_statuses
        return False

    def next_delay(self, error: QualtricsError) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up and raise ``error``."""
        if isinstance(error, AuthError) or not self.is_retriable(error):
            return None
        if self.attempts >= self.policy.max_attempts:
            return None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            if retry_after > self.policy.max_retry_after:
                return None
            delay = float(retry_after)
        else:
            delay = self.policy.backoff(self.attempts - 1, self._rng)
        elapsed = self._clock() - self._started
        if elapsed + delay > self.policy.max_elapsed:
            return None
        return delay
