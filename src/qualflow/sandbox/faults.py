"""Fault injection: per-path error rates, latency and hangs, plus the brand-wide rate limit.

Rules are matched against ``METHOD path`` with shell-style patterns (``/API/v3/surveys/*``).
Each rule may answer a share of matching calls with 429 (with ``Retry-After``), 500 or 503, add
latency before the call is handled, or hang far longer than any sane client timeout. ``count``
limits how many calls a rule affects, which makes a fault deterministic in tests (``rate=1,
count=2``: the next two calls fail, then the rule is spent).
"""

from __future__ import annotations

import asyncio
import fnmatch
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from qualflow.sandbox import errors
from qualflow.sandbox.errors import ApiError, bad_request

# Re-exported: defined in a light module the command line reads for its options.
from qualflow.sandbox.fault_limits import MAX_DELAY as MAX_DELAY
from qualflow.sandbox.fault_limits import MAX_RATE_LIMIT as MAX_RATE_LIMIT
from qualflow.sandbox.fault_limits import MAX_RETRY_AFTER as MAX_RETRY_AFTER
from qualflow.sandbox.fault_limits import HttpMethod as HttpMethod

ERROR_STATUSES = (429, 500, 503, 504)
HTTP_METHODS = tuple(method.value for method in HttpMethod)
#: The longest path pattern a rule may have.
MAX_PATTERN = 2048


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class FaultRule:
    """One fault rule. ``path`` is a shell-style pattern over the request path."""

    path: str = "*"
    method: str | None = None
    status: int | None = None  # 429 / 500 / 503 / 504 answered for ``rate`` of the calls
    rate: float = 1.0
    retry_after: int | None = None  # seconds; 429 always sends it (default 1), 5xx only if set
    latency: float = 0.0  # seconds added before handling
    hang: float = 0.0  # seconds to stall before answering 504 (a "timeout")
    count: int | None = None  # calls left to affect; None = unlimited
    id: int = 0
    hits: int = 0

    def __post_init__(self) -> None:
        # A rule comes from JSON: a wrong type must be refused here, naming the field, or it is
        # stored and then breaks every call it is matched against.
        if not isinstance(self.path, str) or not self.path:
            raise bad_request("Invalid fault: path must be a non-empty pattern string.")
        if len(self.path) > MAX_PATTERN:
            raise bad_request(f"Invalid fault: path must be at most {MAX_PATTERN} characters.")
        if self.status is not None and (
            not _is_int(self.status) or self.status not in ERROR_STATUSES
        ):
            raise bad_request(f"Invalid fault: status must be one of {ERROR_STATUSES}.")
        if not _is_number(self.rate) or not 0.0 <= self.rate <= 1.0:  # also refuses NaN
            raise bad_request("Invalid fault: rate must be a number between 0 and 1.")
        for name in ("latency", "hang"):
            value = getattr(self, name)
            if _is_number(value) and value < 0:
                raise bad_request(f"Invalid fault: {name} must not be negative.")
            if not _is_number(value) or not value <= MAX_DELAY:  # also refuses NaN
                raise bad_request(
                    f"Invalid fault: {name} must be a number of seconds from 0 to {MAX_DELAY:g}."
                )
        retry_after: Any = self.retry_after
        if _is_number(retry_after) and retry_after < 0:
            raise bad_request("Invalid fault: retryAfter must not be negative.")
        if retry_after is not None and (
            not _is_int(retry_after) or not 0 <= retry_after <= MAX_RETRY_AFTER
        ):
            raise bad_request(
                f"Invalid fault: retryAfter must be whole seconds from 0 to {MAX_RETRY_AFTER}."
            )
        if self.count is not None and (not _is_int(self.count) or self.count < 0):
            raise bad_request("Invalid fault: count must be a whole number of calls (0 or more).")
        if self.status is None and not self.latency and not self.hang:
            raise bad_request("Invalid fault: give at least one of status, latency, hang.")
        if self.method is not None:
            if not isinstance(self.method, str) or self.method.upper() not in HTTP_METHODS:
                raise bad_request(
                    f"Invalid fault: method must be one of {', '.join(HTTP_METHODS)}."
                )
            self.method = self.method.upper()

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        return fnmatch.fnmatchcase(path, self.path)

    @classmethod
    def from_json(cls, data: Any) -> FaultRule:
        if not isinstance(data, dict):
            raise bad_request("Invalid fault: expected a JSON object.")
        aliases = {"retryAfter": "retry_after"}
        known = {f for f in cls.__dataclass_fields__ if f not in ("id", "hits")}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            name = aliases.get(key, key)
            if name not in known:
                raise bad_request(f"Invalid fault: unknown field {key!r}.")
            kwargs[name] = value
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise bad_request(f"Invalid fault: {exc}.") from None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["retryAfter"] = data.pop("retry_after")
        return data


@dataclass
class Verdict:
    """What the fault layer decided for one call."""

    latency: float = 0.0
    hang: float = 0.0
    error: ApiError | None = None


class TokenBucket:
    """A leaky/token bucket: ``capacity`` calls, refilled at ``capacity / period`` per second."""

    def __init__(
        self, capacity: int, period: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.period = period
        self._clock = clock
        self._tokens = float(capacity)
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0.0 if a call may proceed, else seconds until one token is available."""
        rate = self.capacity / self.period
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / rate


@dataclass
class FaultInjector:
    """The fault rules and the optional brand rate limit of one sandbox."""

    rules: list[FaultRule] = field(default_factory=list)
    rate_limit_per_minute: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._random = random.Random(self.seed)
        self._bucket: TokenBucket | None = None
        self._next_id = 1

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            rule.id = self._next_id
            self._next_id += 1
            self.rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self.rules)
            self.rules = [r for r in self.rules if r.id != rule_id]
            return len(self.rules) != before

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.rate_limit_per_minute = None
            self._bucket = None

    def set_rate_limit(self, per_minute: int | None) -> None:
        """Switch the brand-wide limit on (e.g. 3000) or off (None)."""
        if per_minute is not None and not 1 <= per_minute <= MAX_RATE_LIMIT:
            raise bad_request(
                f"Invalid rate limit: requests per minute must be 1 to {MAX_RATE_LIMIT} "
                "(Qualtrics allows 3000 per brand)."
            )
        with self._lock:
            self.rate_limit_per_minute = per_minute
            self._bucket = TokenBucket(per_minute) if per_minute else None

    def cut_short(self) -> None:
        """The server is stopping: end every latency and hang now (safe from a signal handler)."""
        self._stopping.set()

    async def stall(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if :meth:`cut_short` is called meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self._stopping.is_set():
            left = deadline - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.1))

    def check(self, method: str, path: str, *, brand_limited: bool = True) -> Verdict:
        """Decide latency / hang / error for one API call; ``brand_limited``: the call counts
        against the Qualtrics brand rate limit (a Tango call does not)."""
        verdict = Verdict()
        with self._lock:
            bucket = self._bucket
            for rule in self.rules:
                if rule.count == 0 or not rule.matches(method, path):
                    continue
                if rule.status is not None and self._random.random() >= rule.rate:
                    continue
                rule.hits += 1
                if rule.count is not None:
                    rule.count -= 1
                verdict.latency += rule.latency
                verdict.hang = max(verdict.hang, rule.hang)
                if rule.status is not None and verdict.error is None:
                    verdict.error = _fault_error(rule.status, rule.retry_after)
        if verdict.error is None and bucket is not None and brand_limited:
            wait = bucket.take()
            if wait > 0:
                verdict.error = ApiError(
                    429,
                    errors.RATE_LIMITED,
                    "Too many requests: the brand rate limit "
                    f"({self.rate_limit_per_minute} per minute) was exceeded.",
                    headers={"Retry-After": str(max(1, round(wait + 0.5)))},
                )
        return verdict

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rules": [r.to_json() for r in self.rules],
                "rateLimitPerMinute": self.rate_limit_per_minute,
            }


def _fault_error(status: int, retry_after: int | None) -> ApiError:
    if status == 429:
        return ApiError(
            429,
            errors.RATE_LIMITED,
            "You have reached the concurrent request limit.",
            headers={"Retry-After": str(1 if retry_after is None else retry_after)},
        )
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    if status == 503:
        message = "Temporary internal server error (injected fault)."
        return ApiError(503, errors.UNAVAILABLE, message, headers=headers)
    if status == 504:
        return ApiError(
            504, errors.UNAVAILABLE, "Gateway timeout (injected fault).", headers=headers
        )
    message = "Internal server error (injected fault)."
    return ApiError(500, errors.SERVER_ERROR, message, headers=headers)
