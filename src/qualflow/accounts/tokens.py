"""Personal API tokens: random, shown once, stored as SHA-256, revocable."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qualflow.accounts.errors import InvalidAccountInput, NotFound
from qualflow.accounts.models import ApiToken, User
from qualflow.store.base import utcnow
from qualflow.store.secrets import register_secret
from qualflow.validation import refuse_control_characters

__all__ = [
    "TOKEN_PREFIX",
    "hash_token",
    "issue_token",
    "list_tokens",
    "resolve_token",
    "revoke_token",
]

#: Recognisable in leaked-secret scanners and in logs.
TOKEN_PREFIX = "qfp_"
# Refreshing last_used_at on every call would turn each API read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(raw: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough (no dictionary to guess from).
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def issue_token(
    db: Session, user: User, name: str, *, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns the row and the raw token (never stored)."""
    label = name.strip()
    if not label or len(label) > 100:
        raise InvalidAccountInput("token name must be 1 to 100 characters")
    try:
        refuse_control_characters(label)
    except ValueError as exc:
        raise InvalidAccountInput(f"token name {exc}") from None
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidAccountInput("token expiry must be in the future")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    register_secret(raw)
    token = ApiToken(
        user_id=user.id,
        name=label,
        token_hash=hash_token(raw),
        last4=raw[-4:],
        expires_at=expires_at,
    )
    db.add(token)
    db.flush()
    return token, raw


def list_tokens(
    db: Session, user_id: int, *, limit: int | None = None, offset: int = 0
) -> Sequence[ApiToken]:
    """A person's tokens by id (oldest first), all of them or the page of ``limit`` at
    ``offset``."""
    return db.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == user_id)
        .order_by(ApiToken.id)
        .limit(limit)
        .offset(offset)
    ).all()


def count_tokens(db: Session, user_id: int) -> int:
    return (
        db.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user_id))
        or 0
    )


def get_token(db: Session, user_id: int, token_id: int) -> ApiToken:
    token = db.get(ApiToken, token_id)
    if token is None or token.user_id != user_id:
        raise NotFound(f"token {token_id} does not exist")
    return token


def revoke_token(db: Session, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        db.flush()
    return token


def resolve_token(db: Session, raw: str) -> tuple[ApiToken | None, str]:
    """The token row for ``raw`` if it is usable, else None and why not."""
    token = db.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(raw)))
    if token is None:
        return None, "the API token is not valid"
    if token.revoked_at is not None:
        return None, "the API token has been revoked"
    now = utcnow()
    if token.expires_at is not None and token.expires_at <= now:
        return None, "the API token has expired"
    if token.last_used_at is None or now - token.last_used_at >= _LAST_USED_RESOLUTION:
        token.last_used_at = now
        db.flush()
    return token, ""
