"""UI sessions: a random cookie value, its SHA-256 in the table, an expiry, sign-out."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from qualflow.accounts.models import UiSession, User
from qualflow.accounts.tokens import hash_token
from qualflow.store.base import utcnow
from qualflow.store.secrets import register_secret

__all__ = ["end_all_sessions", "end_session", "purge_expired", "resolve_session", "start_session"]

_LAST_SEEN_RESOLUTION = timedelta(minutes=1)


def start_session(
    db: Session, user: User, *, max_age: int, user_agent: str | None = None
) -> tuple[UiSession, str]:
    """Sign ``user`` in; returns the row and the cookie value (never stored)."""
    raw = secrets.token_urlsafe(32)
    register_secret(raw)
    now = utcnow()
    session = UiSession(
        user_id=user.id,
        token_hash=hash_token(raw),
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=max_age),
        user_agent=(user_agent or "")[:300] or None,
    )
    db.add(session)
    db.flush()
    return session, raw


def resolve_session(db: Session, raw: str) -> UiSession | None:
    session = db.scalar(select(UiSession).where(UiSession.token_hash == hash_token(raw)))
    now = utcnow()
    if session is None or session.expires_at <= now:
        return None
    if now - session.last_seen_at >= _LAST_SEEN_RESOLUTION:
        session.last_seen_at = now
        db.flush()
    return session


def end_session(db: Session, raw: str) -> bool:
    result = db.execute(delete(UiSession).where(UiSession.token_hash == hash_token(raw)))
    return bool(getattr(result, "rowcount", 0))


def end_all_sessions(db: Session, user_id: int) -> None:
    db.execute(delete(UiSession).where(UiSession.user_id == user_id))


def purge_expired(db: Session) -> int:
    result = db.execute(delete(UiSession).where(UiSession.expires_at <= utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)
