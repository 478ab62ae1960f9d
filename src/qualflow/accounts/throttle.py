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
from typing import TYPE_CHECKING, TypeVar

from qualflow.accounts.passwords import verify_password

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qualflow.accounts.models import User

__all__ = [
    "SignInThrottle",
    "TooManyGuesses",
    "check_current_password",
    "minutes_to_wait",
    "sign_in_throttle",
    "sign_in_with_password",
]

T = TypeVar("T")


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


def _counted(email: str, address: str, attempt: Callable[[], T | None]) -> T | None:
    """``attempt()`` (None: the password was wrong) counted by the sign-in throttle; raises
    :class:`TooManyGuesses` instead of attempting once the throttle's limit is reached."""
    wait = sign_in_throttle.retry_after(email, address)
    if wait is not None:
        raise TooManyGuesses(wait)
    outcome = attempt()
    if outcome is None:
        sign_in_throttle.failed(email, address)
    else:
        sign_in_throttle.succeeded(email, address)
    return outcome


def sign_in_with_password(db: Session, email: str, password: str, address: str) -> User | None:
    """The active account ``email`` and ``password`` open (None when they open none), counted
    by the sign-in throttle. The API's sign-in and the sign-in page both come here, so neither
    is a way around the other's limit. Raises :class:`TooManyGuesses` past the limit."""
    from qualflow.accounts.users import authenticate_password

    return _counted(email, address, lambda: authenticate_password(db, email, password))


def check_current_password(password_hash: str, email: str, password: str, address: str) -> bool:
    """Whether ``password`` is the account's current one, counted as a sign-in attempt: a
    stolen session or API token must not be a way to guess the password (and then take the
    account) faster than the sign-in form allows. Raises :class:`TooManyGuesses` instead of
    checking once the throttle's limit is reached."""
    matches = _counted(email, address, lambda: verify_password(password_hash, password) or None)
    return matches is not None


def minutes_to_wait(retry_after: float) -> int:
    """The whole minutes a person is told to wait for ``retry_after`` seconds (at least 1)."""
    return int(retry_after) // 60 + 1
