"""Retry decisions and Retry-After parsing (pure logic shared by both clients)."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_tz

import pytest
from hypothesis import assume, example, given
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
from qualflow.qualtrics.retry import (
    MAX_RETRY_AFTER,
    RetryPolicy,
    RetryState,
    parse_retry_after,
)

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


# -- only ASCII delta-seconds, a plain non-negative decimal, or an HTTP date count ---------------

#: What the header may hold to count (the spec of parse_retry_after, written independently).
_SANE_NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")


def _counts(value: str) -> bool:
    text = value.strip(" \t")
    return text.isascii() and (
        _SANE_NUMBER.fullmatch(text) is not None or parsedate_tz(text) is not None
    )


#: Digits that str.isdigit() or float() take but that are not ASCII: Arabic-Indic, Devanagari,
#: full-width, superscript and circled ones among them.
_NON_ASCII_DIGITS = st.characters(categories=["Nd", "No"], exclude_characters="0123456789").filter(
    lambda c: c.isdigit() or c.isdecimal()
)

_VALID = st.one_of(
    st.integers(min_value=0, max_value=10**12).map(str),
    st.floats(min_value=0, max_value=1e9, allow_nan=False).map(lambda f: f"{f:.3f}"),
    st.integers(min_value=-(10**8), max_value=10**8).map(
        lambda offset: format_datetime(NOW + timedelta(seconds=offset), usegmt=True)
    ),
)


@st.composite
def _spoiled(draw: st.DrawFn) -> str:
    """A value that would count, with one character replaced by, or one inserted from, a
    non-ASCII one (often a digit that float() or int() would read)."""
    valid = draw(_VALID)
    odd = draw(st.one_of(_NON_ASCII_DIGITS, st.characters(min_codepoint=128)))
    at = draw(st.integers(min_value=0, max_value=len(valid)))
    replace = draw(st.booleans())
    return valid[:at] + odd + valid[at + int(replace) :]


#: ASCII that looks numeric to float() or int() but is not delta-seconds: signs, exponents,
#: underscores, hex, inner spaces, "nan", "inf".
_NUMBERISH = st.one_of(
    st.text(alphabet="0123456789+-_.eExXaAfFnNiI \t", max_size=12),
    st.sampled_from(["+5", "-0", "1e3", "1_000", "0x10", "1 2", "nan", "inf", "-inf", "5e-1"]),
)


@given(st.one_of(st.text(), _spoiled(), _NUMBERISH, _NON_ASCII_DIGITS.map(lambda d: d * 3)))
@example("٣")  # ARABIC-INDIC DIGIT THREE: float("٣") == 3.0
@example("３０")  # full-width "30"
@example("²")  # superscript two: isdigit() but not int()-able
@example("\u00a05")  # no-break space: str.strip() removes it, HTTP does not
@example("Mon, ０１ Aug 2025 12:00:00 GMT")  # a date with full-width digits
def test_anything_but_delta_seconds_a_plain_number_or_a_date_is_absent(value: str) -> None:
    assume(not _counts(value))
    assert parse_retry_after(value, now=NOW) is None


@given(_VALID, st.sampled_from(["", " ", "\t", "  \t"]), st.sampled_from(["", " ", "\t "]))
def test_valid_values_count_with_http_whitespace_around_them(
    value: str, before: str, after: str
) -> None:
    parsed = parse_retry_after(before + value + after, now=NOW)
    assert parsed is not None
    assert 0 <= parsed <= MAX_RETRY_AFTER


@given(st.integers(min_value=10, max_value=6000))
def test_huge_delta_seconds_are_the_ceiling_not_a_crash(digits: int) -> None:
    # int() refuses over 4300 digits and float(int) overflows past 10**308: neither may escape.
    assert parse_retry_after("9" * digits) == min(float("9" * digits), MAX_RETRY_AFTER)
    assert parse_retry_after("9" * digits + ".5") == min(float("9" * digits), MAX_RETRY_AFTER)


def test_a_date_far_ahead_is_the_ceiling() -> None:
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now=NOW) == MAX_RETRY_AFTER


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


NAN = float("nan")


@pytest.mark.parametrize("field", ["base_delay", "max_delay", "max_elapsed", "max_retry_after"])
@pytest.mark.parametrize("value", [NAN, -1.0])
def test_a_policy_with_a_nan_or_negative_delay_is_refused(field: str, value: float) -> None:
    # NaN slips past `< 0`, and a NaN budget is never spent.
    with pytest.raises(ValueError, match="delays"):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]
