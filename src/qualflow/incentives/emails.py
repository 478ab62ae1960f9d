"""Respondent email addresses: validation and the normalized form rewards are unique on."""

from __future__ import annotations

import re

__all__ = ["NO_EMAIL_MESSAGE", "normalize_email"]

#: The one message people see whenever a reward cannot be tied to an email address.
NO_EMAIL_MESSAGE = (
    "this response has no respondent email: the survey must collect one; "
    "anonymous responses cannot be rewarded"
)

# Deliberately plain: one @, a dot in the domain, no spaces or separators. Rewards are sent by
# email, so anything a mail server would refuse is refused here first.
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
MAX_EMAIL_LENGTH = 254


def normalize_email(value: object) -> str | None:
    """The normalized address (trimmed, lower-cased), or None if ``value`` is not an email.

    Gmail-style dot and ``+tag`` folding is deliberately not applied: it would merge distinct
    mailboxes at other providers.
    """
    if not isinstance(value, str):
        return None
    candidate = value.strip()
    if not candidate or len(candidate) > MAX_EMAIL_LENGTH or not _EMAIL.match(candidate):
        return None
    local, _, _domain = candidate.rpartition("@")
    if len(local) > 64 or ".." in candidate or local.startswith(".") or local.endswith("."):
        return None
    return candidate.lower()
