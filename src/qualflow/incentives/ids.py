"""Reference ids people read, copy and say aloud: ``INC-7F3K2Q`` (incentives), ``RW-…`` (rewards).

The alphabet leaves out characters that are easy to confuse (0/O, 1/I/L, U/V), so an id read
over the phone or copied by hand still resolves. Uniqueness is the database's job (unique
columns); callers retry with a fresh id on the rare collision.
"""

from __future__ import annotations

import re
import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
INCENTIVE_PREFIX = "INC-"
REWARD_PREFIX = "RW-"
INCENTIVE_ID_LENGTH = 6
REWARD_ID_LENGTH = 8

INCENTIVE_ID_PATTERN = re.compile(rf"^INC-[{ALPHABET}]{{{INCENTIVE_ID_LENGTH}}}$")
REWARD_ID_PATTERN = re.compile(rf"^RW-[{ALPHABET}]{{{REWARD_ID_LENGTH}}}$")


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def new_incentive_reference() -> str:
    """A fresh incentive reference id, e.g. ``INC-7F3K2Q``."""
    return INCENTIVE_PREFIX + _random(INCENTIVE_ID_LENGTH)


def new_reward_reference() -> str:
    """A fresh reward reference id, e.g. ``RW-7F3K2QMX``."""
    return REWARD_PREFIX + _random(REWARD_ID_LENGTH)


def normalize_reference(value: str) -> str:
    """Upper-case and trim what a person typed or pasted (``inc-7f3k2q `` → ``INC-7F3K2Q``)."""
    return value.strip().upper()
