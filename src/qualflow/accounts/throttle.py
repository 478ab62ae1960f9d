"""Slow down password guessing: too many failed sign-ins from one address for one account.

In-process and in-memory (a restart forgets): enough for one hub process, and argon2 already
makes each guess cost a fifth of a second. Keyed by (email, client address), so an attacker
elsewhere cannot lock a person out of their own browser.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from qualflow.accounts.passwords import verify_password

__all__ = [
    "SignInThrottle",
    "TooManyGuesses",
    "check_current_password",
    "minutes_to_wait",
    "sign_in_throttle",
]


class SignInThrottle:
    """At most ``max_failures`` failed sign-ins per key within ``window`` seconds."""

    def __init__(
        self,
        max_failures: int = 10,
        window: float = 15 * 60,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and now - failures[0] >= self.window:
            failures.popleft()
        return failures

    def retry_after(self, email: str, address: str) -> float | None:
        """Seconds to wait before trying again, or None when a sign-in may be attempted."""
        key = (email.strip().lower(), address)
        with self._lock:
            now = self._clock()
            failures = self._recent(key, now)
            if len(failures) < self.max_failures:
                if not failures:
                    self._failures.pop(key, None)
                return None
            return max(1.0, self.window - (now - failures[0]))

    def failed(self, email: str, address: str) -> None:
        key = (email.strip().lower(), address)
        with self._lock:
            self._recent(key, self._clock()).append(self._clock())

    def succeeded(self, email: str, address: str) -> None:
        with self._lock:
            self._failures.pop((email.strip().lower(), address), None)


#: The process-wide throttle the sign-in routes share.
sign_in_throttle = SignInThrottle()


class TooManyGuesses(Exception):
    """Too many wrong passwords lately for this account from this address."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many wrong passwords; try again in {retry_after:.0f} s")
        self.retry_after = retry_after


def check_current_password(password_hash: str, email: str, password: str, address: str) -> bool:
    """Whether ``password`` is the account's current one, counted as a sign-in attempt: a
    stolen session or API token must not be a way to guess the password (and then take the
    account) faster than the sign-in form allows. Raises :class:`TooManyGuesses` instead of
    checking once the throttle's limit is reached."""
    wait = sign_in_throttle.retry_after(email, address)
    if wait is not None:
        raise TooManyGuesses(wait)
    if verify_password(password_hash, password):
        sign_in_throttle.succeeded(email, address)
        return True
    sign_in_throttle.failed(email, address)
    return False


def minutes_to_wait(retry_after: float) -> int:
    """The whole minutes a person is told to wait for ``retry_after`` seconds (at least 1)."""
    return int(retry_after) // 60 + 1
