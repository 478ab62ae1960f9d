"""Retry decisions and Retry-After parsing (pure logic shared by both clients)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qualflow.qualtrics.errors import (
    AuthError,
    BadRequest,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    error_for_status,
)
from qualflow.qualtrics.retry import RetryPolicy, RetryState, parse_retry_after

NOW = datetime(2025, 8, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@given(st.integers(min_value=0, max_value=10**9))
def test_retry_after_delta_seconds(seconds: int) -> None:
    assert parse_retry_after(str(seconds)) == float(seconds)
    assert parse_retry_after(f"  {seconds} ") == float(seconds)


@given(st.integers(min_value=-10**6, max_value=10**6))
def test_retry_after_http_date(offset: int) -> None:
    when = NOW + timedelta(seconds=offset)
    parsed = parse_retry_after(format_datetime(when, usegmt=True), now=NOW)
    assert parsed == float(max(0, offset))


@given(st.text())
def test_retry_after_never_crashes_and_is_never_negative(value: str) -> None:
    parsed = parse_retry_after(value, now=NOW)
    assert parsed is None or parsed >= 0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "nan", "inf", "Mon, 99 Foo 2025"])
def test_retry_after_garbage_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_retry_after_fractional_seconds() -> None:
    assert parse_retry_after("1.5") == 1.5


@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=2**32))
def test_backoff_is_full_jitter_within_the_cap(retry: int, seed: int) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0)
    delay = policy.backoff(retry, random.Random(seed))
    assert 0.0 <= delay <= min(30.0, 0.5 * 2 ** min(retry, 32))


def _state(idempotent: bool, **policy: float) -> tuple[RetryState, FakeClock]:
    clock = FakeClock()
    kwargs = {"max_attempts": 5, **policy}
    return RetryState(RetryPolicy(**kwargs), idempotent=idempotent, clock=clock), clock  # type: ignore[arg-type]


def _status(code: int, retry_after: float | None = None) -> ServerError | RateLimited:
    error = error_for_status(code, error_message="x", retry_after=retry_after)
    assert isinstance(error, ServerError | RateLimited)
    return error


@pytest.mark.parametrize("code", [500, 503, 504])
def test_idempotent_requests_retry_server_errors(code: int) -> None:
    state, _ = _state(idempotent=True)
    state.start_attempt()
    assert state.next_delay(_status(code)) is not None


@pytest.mark.parametrize("code", [500, 503, 504])
def test_non_idempotent_requests_never_retry_server_errors(code: int) -> None:
    state, _ = _state(idempotent=False)
    state.start_attempt()
    assert state.next_delay(_status(code)) is None


def test_non_idempotent_requests_retry_429_and_unsent_connections_only() -> None:
    state, _ = _state(idempotent=False)
    state.start_attempt()
    assert state.next_delay(_status(429, retry_after=2)) == 2.0
    assert state.next_delay(TransportError("refused", request_sent=False)) is not None
    assert state.next_delay(TransportError("read timeout", request_sent=True)) is None


@pytest.mark.parametrize(
    "error", [BadRequest("bad"), NotFound("gone"), AuthError("who?"), _status(501)]
)
def test_fatal_errors_are_not_retried(error: Exception) -> None:
    state, _ = _state(idempotent=True)
    state.start_attempt()
    assert state.next_delay(error) is None  # type: ignore[arg-type]


def test_retry_after_is_honoured_exactly() -> None:
    state, _ = _state(idempotent=True)
    state.start_attempt()
    assert state.next_delay(_status(503, retry_after=7)) == 7.0


def test_attempts_are_capped() -> None:
    state, _ = _state(idempotent=True, max_attempts=3)
    delays = []
    for _ in range(5):
        state.start_attempt()
        delays.append(state.next_delay(_status(503)))
    assert [d is not None for d in delays] == [True, True, False, False, False]


def test_total_time_is_capped() -> None:
    state, clock = _state(idempotent=True, max_elapsed=10.0, max_attempts=100)
    state.start_attempt()
    assert state.next_delay(_status(429, retry_after=4)) == 4.0
    clock.now = 8.0
    state.start_attempt()
    # Waiting 4 more seconds would end after the 10 s budget: give up now.
    assert state.next_delay(_status(429, retry_after=4)) is None


def test_too_long_retry_after_gives_up_with_the_hint_kept() -> None:
    state, _ = _state(idempotent=True, max_retry_after=60.0)
    state.start_attempt()
    error = _status(429, retry_after=3600)
    assert state.next_delay(error) is None
    assert isinstance(error, RateLimited)
    assert error.retry_after == 3600


def test_errors_say_whether_they_are_retriable() -> None:
    assert _status(429).retriable
    assert _status(503).retriable
    assert _status(500).retriable
    assert not _status(501).retriable
    assert not BadRequest("x").retriable
    assert TransportError("x").retriable


def test_atp_2_is_an_auth_error_despite_http_400() -> None:
    error = error_for_status(400, error_code="ATP_2", error_message="no auth")
    assert isinstance(error, AuthError)
    assert error.status_code == 400
    assert "ATP_2" in str(error)


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    assert RetryPolicy.never().max_attempts == 1
