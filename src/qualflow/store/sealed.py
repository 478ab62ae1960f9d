"""Secrets kept inside JSON documents (e.g. a step's config in an automation definition).

A secret written into a stored document is *sealed*: replaced by the string
``sealed:v1:<Fernet token>:<last 4 characters>``. The token is made by the store's
:class:`~qualflow.store.secrets.SecretBox` (so ``qualflow secrets rotate`` re-encrypts it like any
encrypted column); the last 4 characters are kept in clear so a masked form (``••••abcd``) can be
shown without decrypting anything.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Dialect

from qualflow.store.secrets import EncryptedString, SecretBox, SecretDecryptionError

__all__ = [
    "MASK_PREFIX",
    "SEALED_PREFIX",
    "is_masked",
    "is_sealed",
    "mask_value",
    "reseal",
    "seal",
    "sealed_last4",
    "unseal",
    "unseal_with_dialect",
]

SEALED_PREFIX = "sealed:v1:"
MASK_PREFIX = "••••"


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def is_masked(value: Any) -> bool:
    """A value as shown to people (``••••`` and at most 4 characters), never a real secret."""
    return isinstance(value, str) and value.startswith(MASK_PREFIX) and len(value) <= 8


def _parts(value: str) -> tuple[str, str]:
    token, _, last4 = value.removeprefix(SEALED_PREFIX).partition(":")
    if not token:
        raise SecretDecryptionError("a sealed secret is malformed")
    return token, last4


def _last4(plaintext: str) -> str:
    # A short secret keeps nothing in clear: its last 4 characters would be most of it.
    return plaintext[-4:] if len(plaintext) >= 8 else ""


def seal(box: SecretBox, plaintext: str) -> str:
    """Encrypt a secret into its sealed form (idempotent on sealed values)."""
    if is_sealed(plaintext):
        return plaintext
    return f"{SEALED_PREFIX}{box.encrypt(plaintext)}:{_last4(plaintext)}"


def unseal(box: SecretBox, value: str) -> str:
    """The secret inside a sealed value (a plain value is returned as it is)."""
    if not is_sealed(value):
        return value
    token, _last4 = _parts(value)
    return box.decrypt(token)


def unseal_with_dialect(dialect: Dialect, value: str) -> str:
    """:func:`unseal` with the secret box attached to a database engine's dialect."""
    if not is_sealed(value):
        return value
    token, _last4 = _parts(value)
    plaintext = EncryptedString().process_result_value(token, dialect)
    assert plaintext is not None
    return plaintext


def reseal(box: SecretBox, value: str) -> str:
    """Re-encrypt a sealed value with the box's newest key."""
    token, last4 = _parts(value)
    return f"{SEALED_PREFIX}{box.rotate(token)}:{last4}"


def sealed_last4(value: str) -> str:
    return _parts(value)[1] if is_sealed(value) else _last4(value)


def mask_value(value: Any) -> Any:
    """What may be shown of a secret value: ``••••`` and its last 4 characters."""
    if isinstance(value, str) and value:
        if is_masked(value):
            return value
        return MASK_PREFIX + sealed_last4(value)
    return value
