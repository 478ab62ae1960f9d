"""Fraud signals: Qualtrics' fraud-detection fields on the response, and patterns across requests.

Each finding is one readable line; a reward held for review lists them so a reviewer can decide
without opening the response.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table, bindparam, distinct, func, null, select
from sqlalchemy.orm import Session

from qualflow.incentives.models import RewardRequest
from qualflow.incentives.schemas import FraudRules

RECAPTCHA = "Q_RecaptchaScore"
DUPLICATE = "Q_RelevantIDDuplicate"
DUPLICATE_SCORE = "Q_RelevantIDDuplicateScore"
FRAUD_SCORE = "Q_RelevantIDFraudScore"
BALLOT_BOX = "Q_BallotBoxStuffing"
#: Every field the rules read, as Qualtrics names them (and a platform request may carry them).
FRAUD_FIELDS = (RECAPTCHA, DUPLICATE, DUPLICATE_SCORE, FRAUD_SCORE, BALLOT_BOX)

#: How to supply missing fields, by where the values came from.
_SUPPLY_MISSING = {
    "response": "turn fraud detection on in the survey",
    "request": "send them with the request, e.g. Q_RecaptchaScore=${e://Field/Q_RecaptchaScore}"
    " in a Qualtrics Web Service task",
    "event": "send them in the event's fields",
}

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def _present(values: Mapping[str, Any], field: str) -> bool:
    value = values.get(field)
    return value is not None and not (isinstance(value, str) and not value.strip())


def _number(values: Mapping[str, Any], field: str) -> float | str:
    """The field as a number, or the raw text when it is not one."""
    value = values.get(field)
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return str(value)


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def _fmt(value: float) -> str:
    return f"{value:g}"


def response_findings(
    values: Mapping[str, Any], rules: FraudRules, origin: str = "response"
) -> list[str]:
    """Reasons to hold a reward, from the fraud-detection fields of its response (or of the
    platform ``request`` or JSON ``event`` that asked for it: ``origin``)."""
    findings: list[str] = []
    missing: list[str] = []

    if rules.recaptcha.enabled:
        if not _present(values, RECAPTCHA):
            missing.append(RECAPTCHA)
        else:
            score = _number(values, RECAPTCHA)
            if isinstance(score, str):
                findings.append(f"{RECAPTCHA} has an unreadable value {score!r}")
            elif score < rules.recaptcha.threshold:
                findings.append(
                    f"{RECAPTCHA} {_fmt(score)} is below {_fmt(rules.recaptcha.threshold)} "
                    "(likely a bot)"
                )

    if rules.relevant_id_duplicate.enabled:
        has_flag = _present(values, DUPLICATE)
        has_score = _present(values, DUPLICATE_SCORE)
        if not has_flag and not has_score:
            missing.append(DUPLICATE)
        if has_flag and _flag(values[DUPLICATE]):
            findings.append(f"{DUPLICATE} is true (RelevantID saw this respondent before)")
        elif has_score:
            score = _number(values, DUPLICATE_SCORE)
            if isinstance(score, str):
                findings.append(f"{DUPLICATE_SCORE} has an unreadable value {score!r}")
            elif score >= rules.relevant_id_duplicate.threshold:
                findings.append(
                    f"{DUPLICATE_SCORE} {_fmt(score)} is at or above "
                    f"{_fmt(rules.relevant_id_duplicate.threshold)} (likely a duplicate)"
                )

    if rules.relevant_id_fraud.enabled:
        if not _present(values, FRAUD_SCORE):
            missing.append(FRAUD_SCORE)
        else:
            score = _number(values, FRAUD_SCORE)
            if isinstance(score, str):
                findings.append(f"{FRAUD_SCORE} has an unreadable value {score!r}")
            elif score >= rules.relevant_id_fraud.threshold:
                findings.append(
                    f"{FRAUD_SCORE} {_fmt(score)} is at or above "
                    f"{_fmt(rules.relevant_id_fraud.threshold)} (likely fraudulent)"
                )

    # Qualtrics writes Q_BallotBoxStuffing only when it detects a repeat, so absence is normal.
    if rules.ballot_box_stuffing.enabled and _present(values, BALLOT_BOX):
        flag = _flag(values[BALLOT_BOX])
        if flag is None or flag:
            findings.append(f"{BALLOT_BOX} is set (a repeated submission from one browser)")

    if missing and rules.hold_when_fields_missing:
        findings.append(
            f"fraud-detection field(s) missing from the {origin}: "
            + ", ".join(missing)
            + f" ({_SUPPLY_MISSING.get(origin, _SUPPLY_MISSING['response'])},"
            " or switch these rules off)"
        )
    return findings


_REQUESTS: Table = RewardRequest.__table__  # type: ignore[assignment]
# Built once: they run for every reward.
_PARTICIPANTS_OF_EMAIL = select(func.count(distinct(_REQUESTS.c.participant_id))).where(
    _REQUESTS.c.email_normalized == bindparam("f_email"),
    _REQUESTS.c.participant_id.is_not(None),
)
_EMAILS_OF_IP = select(func.count(distinct(_REQUESTS.c.email_normalized))).where(
    _REQUESTS.c.ip_address == bindparam("f_ip"),
    _REQUESTS.c.email_normalized.is_not(None),
)


def cross_request_findings(
    session: Session,
    rules: FraudRules,
    *,
    email_normalized: str,
    ip_address: str | None,
) -> list[str]:
    """Suspicious patterns across every request recorded so far (all incentives).

    The current request must already be recorded, so it counts towards the totals.
    """
    participants = (
        session.scalar(_PARTICIPANTS_OF_EMAIL, {"f_email": email_normalized})
        if rules.shared_email.enabled
        else None
    )
    emails = (
        session.scalar(_EMAILS_OF_IP, {"f_ip": ip_address})
        if rules.shared_ip.enabled and ip_address
        else None
    )
    return count_findings(
        rules, email_normalized=email_normalized, ip_address=ip_address,
        participants=participants, emails=emails,
    )  # fmt: skip


# The same counts for a request not recorded yet, as scalar subqueries another statement selects
# (the reward's first read carries them: no statement of their own). The request's own
# participant id / email is counted once whether or not earlier requests had it: the others'
# distinct values without it, plus one.
_OTHER_PARTICIPANTS = (
    select(func.count(distinct(_REQUESTS.c.participant_id)) + 1)
    .where(
        _REQUESTS.c.email_normalized == bindparam("f_email"),
        _REQUESTS.c.participant_id.is_not(None),
        _REQUESTS.c.participant_id != bindparam("f_participant"),
    )
    .scalar_subquery()
)
_OTHER_EMAILS = (
    select(func.count(distinct(_REQUESTS.c.email_normalized)) + 1)
    .where(
        _REQUESTS.c.ip_address == bindparam("f_ip"),
        _REQUESTS.c.email_normalized.is_not(None),
        _REQUESTS.c.email_normalized != bindparam("f_email"),
    )
    .scalar_subquery()
)


def pending_request_counts(*, participant: bool, ip_address: bool) -> tuple[Any, Any]:
    """Scalar subqueries counting, with a request about to be recorded (bound as ``f_email``,
    ``f_participant``, ``f_ip``), the participant ids its email was used with and the emails
    its IP address sent: what :func:`cross_request_findings` counts once it is recorded.
    ``participant`` / ``ip_address``: whether the request has one (else nothing is bound)."""
    participants = _OTHER_PARTICIPANTS if participant else _PARTICIPANTS_OF_EMAIL.scalar_subquery()
    emails = _OTHER_EMAILS if ip_address else null()
    return participants, emails


def count_findings(
    rules: FraudRules,
    *,
    email_normalized: str,
    ip_address: str | None,
    participants: int | None,
    emails: int | None,
) -> list[str]:
    """The cross-request findings, from the counts (None: not counted)."""
    findings: list[str] = []
    if rules.shared_email.enabled and participants and participants > rules.shared_email.threshold:
        findings.append(
            f"{email_normalized} was used with {participants} different participant ids "
            f"(more than {rules.shared_email.threshold})"
        )
    if rules.shared_ip.enabled and ip_address and emails and emails > rules.shared_ip.threshold:
        findings.append(
            f"{emails} different emails came from IP address {ip_address} "
            f"(more than {rules.shared_ip.threshold})"
        )
    return findings
