"""Platform API keys: how a Qualtrics workflow (or any system) asks qualflow for a reward.

A caller authenticates with HTTP Basic: the platform name as user name, a key as password.

* A key is created with a display name (editable later); at most two keys of a platform are
  active at once, so a key can be rotated (create the new one, switch callers, deactivate the
  old one) without downtime. The limit is the database's: an active key holds slot 1 or 2 and
  ``(platform, slot)`` is unique; creations are serialised on the platform row.
* Deactivation is irreversible: the key frees its slot and never authenticates again.
* Keys are stored encrypted (revealed to people with View permission on API keys, each reveal
  written to the audit log) and as a SHA-256 digest (for authentication without decrypting).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qualflow.incentives.models import ApiKeyAudit, ApiPlatform, PlatformApiKey
from qualflow.store.base import utcnow
from qualflow.validation import MAX_ID

KEY_PREFIX = "qfk_"
MAX_ACTIVE_KEYS = 2
PLATFORM_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
#: Writing ``last_used_at`` on every call would turn each reward request into two writes.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class ApiKeyError(ValueError):
    """A key operation that cannot be done; the message says why."""


class TooManyKeys(ApiKeyError):
    """The platform has two active keys already."""


class KeyNotFound(LookupError):
    """No key has this id."""


@dataclass(frozen=True)
class AuthenticatedKey:
    """The key a platform call authenticated with."""

    key_id: int
    platform: str
    display_name: str

    @property
    def actor(self) -> str:
        return f"API key {self.display_name!r} of platform {self.platform}"


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def check_platform_name(name: str) -> str:
    value = name.strip().lower()
    if not PLATFORM_NAME.match(value):
        raise ApiKeyError(
            "a platform name is 2–64 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def check_display_name(name: str) -> str:
    value = " ".join(name.split())
    if not value or len(value) > 100:
        raise ApiKeyError("a display name is 1–100 characters")
    # NUL, which PostgreSQL cannot store, among them; none is part of a name.
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ApiKeyError("a display name must not contain control characters")
    return value


def _audit(
    session: Session, key: PlatformApiKey, action: str, actor: str, detail: str = ""
) -> None:
    session.add(ApiKeyAudit(key_id=key.id, action=action, actor=actor[:320], detail=detail))


def _platform(session: Session, name: str) -> ApiPlatform:
    """The platform row, created if needed (a concurrent creation of the same one is fine)."""
    values = {"name": name, "key_serial": 0, "created_at": utcnow()}
    if session.get_bind().dialect.name == "postgresql":
        session.execute(postgresql.insert(ApiPlatform).values(values).on_conflict_do_nothing())
    else:
        session.execute(sqlite.insert(ApiPlatform).values(values).on_conflict_do_nothing())
    found = session.scalar(select(ApiPlatform).where(ApiPlatform.name == name))
    assert found is not None
    return found


def create_key(
    session: Session, *, platform: str, display_name: str, actor: str
) -> tuple[PlatformApiKey, str]:
    """Create an active key (caller commits); returns it and the raw key.

    Refused with :class:`TooManyKeys` when the platform has two active keys already.
    """
    name = check_platform_name(platform)
    label = check_display_name(display_name)
    row = _platform(session, name)
    # Take the platform row's lock first: concurrent creations queue here (row lock on
    # PostgreSQL, the write lock on SQLite) and each sees the others' keys when counting.
    session.execute(
        update(ApiPlatform)
        .where(ApiPlatform.id == row.id)
        .values(key_serial=ApiPlatform.key_serial + 1)
        .execution_options(synchronize_session=False)
    )
    active = list(
        session.scalars(
            select(PlatformApiKey).where(
                PlatformApiKey.platform_id == row.id, PlatformApiKey.active_slot.is_not(None)
            )
        )
    )
    if len(active) >= MAX_ACTIVE_KEYS:
        names = ", ".join(repr(k.display_name) for k in active)
        raise TooManyKeys(
            f"platform {name} already has {MAX_ACTIVE_KEYS} active keys ({names}); "
            "deactivate one before creating another"
        )
    slot = min({1, 2} - {k.active_slot for k in active})
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = PlatformApiKey(
        platform_id=row.id,
        display_name=label,
        key=raw,
        key_hash=digest(raw),
        last4=raw[-4:],
        active_slot=slot,
        created_by=actor,
        created_at=utcnow(),
    )
    session.add(key)
    try:
        session.flush()
    except IntegrityError:
        # The slot constraint caught what the lock should have prevented; the caller rolls back.
        raise TooManyKeys(
            f"platform {name} already has {MAX_ACTIVE_KEYS} active keys; deactivate one first"
        ) from None
    _audit(session, key, "created", actor, f"display name {label!r}")
    return key, raw


def get_key(session: Session, key_id: int) -> PlatformApiKey:
    # An id beyond any row's is "no such key", not a database error.
    key = session.get(PlatformApiKey, key_id) if 1 <= key_id <= MAX_ID else None
    if key is None:
        raise KeyNotFound(f"API key {key_id} does not exist")
    return key


def rename_key(session: Session, key_id: int, display_name: str, *, actor: str) -> PlatformApiKey:
    key = get_key(session, key_id)
    label = check_display_name(display_name)
    if label != key.display_name:
        _audit(session, key, "renamed", actor, f"{key.display_name!r} → {label!r}")
        key.display_name = label
    return key


def deactivate_key(session: Session, key_id: int, *, actor: str) -> PlatformApiKey:
    """Deactivate for good: the key frees its slot and never authenticates again."""
    key = get_key(session, key_id)
    if key.deactivated_at is not None:
        raise ApiKeyError(
            f"key {key.display_name!r} was deactivated on {key.deactivated_at:%Y-%m-%d %H:%M} UTC; "
            "deactivation cannot be undone — create a new key instead"
        )
    key.deactivated_at = utcnow()
    key.deactivated_by = actor
    key.active_slot = None
    _audit(session, key, "deactivated", actor)
    return key


def reveal_key(session: Session, key_id: int, *, actor: str) -> tuple[str, str]:
    """The platform name and the key in clear, for copying; the reveal is audited."""
    key = get_key(session, key_id)
    if key.deactivated_at is not None:
        raise ApiKeyError(f"key {key.display_name!r} is deactivated; it cannot be used any more")
    platform = session.get(ApiPlatform, key.platform_id)
    assert platform is not None
    _audit(session, key, "revealed", actor)
    return platform.name, key.key


def _of_platform(platform: str | None) -> list[ColumnElement[bool]]:
    """The condition of a list of keys (joined with their platform) narrowed to ``platform``."""
    return [ApiPlatform.name == platform.strip().lower()] if platform else []


def list_keys(
    session: Session, *, platform: str | None = None, limit: int | None = None, offset: int = 0
) -> list[tuple[PlatformApiKey, str]]:
    """Keys by platform name, a platform's active keys before its deactivated ones, then by id
    (oldest first): all of them or the page of ``limit`` at ``offset``."""
    query = (
        select(PlatformApiKey, ApiPlatform.name)
        .join(ApiPlatform, ApiPlatform.id == PlatformApiKey.platform_id)
        .where(*_of_platform(platform))
        .order_by(ApiPlatform.name, PlatformApiKey.deactivated_at.is_not(None), PlatformApiKey.id)
        .limit(limit)
        .offset(offset)
    )
    return [(key, name) for key, name in session.execute(query).all()]


def count_keys(session: Session, *, platform: str | None = None) -> int:
    query = (
        select(func.count())
        .select_from(PlatformApiKey)
        .join(ApiPlatform, ApiPlatform.id == PlatformApiKey.platform_id)
        .where(*_of_platform(platform))
    )
    return session.scalar(query) or 0


def audit_log(
    session: Session, key_id: int, *, limit: int | None = None, offset: int = 0
) -> list[ApiKeyAudit]:
    """A key's audit newest first (by id), all of it or the page of ``limit`` at ``offset``;
    :class:`KeyNotFound` when the key does not exist."""
    get_key(session, key_id)
    return list(
        session.scalars(
            select(ApiKeyAudit)
            .where(ApiKeyAudit.key_id == key_id)
            .order_by(ApiKeyAudit.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )


def count_audit(session: Session, key_id: int) -> int:
    query = select(func.count()).select_from(ApiKeyAudit).where(ApiKeyAudit.key_id == key_id)
    return session.scalar(query) or 0


def active_count(session: Session, platform: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(PlatformApiKey)
            .join(ApiPlatform, ApiPlatform.id == PlatformApiKey.platform_id)
            .where(ApiPlatform.name == platform, PlatformApiKey.active_slot.is_not(None))
        )
        or 0
    )


def authenticate(session: Session, platform: str, raw: str) -> AuthenticatedKey | None:
    """The active key of ``platform`` equal to ``raw`` (caller commits the last-use time)."""
    if not raw or not platform:
        return None
    found = session.execute(
        select(PlatformApiKey, ApiPlatform.name)
        .join(ApiPlatform, ApiPlatform.id == PlatformApiKey.platform_id)
        .where(PlatformApiKey.key_hash == digest(raw))
    ).first()
    if found is None:
        return None
    key, name = found
    # Compare the platform in constant time too; a valid key of another platform is no key.
    if not hmac.compare_digest(name.encode(), platform.strip().lower().encode()):
        return None
    if key.active_slot is None or key.deactivated_at is not None:
        return None
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        key.last_used_at = now
    return AuthenticatedKey(key.id, name, key.display_name)


def key_status(key: PlatformApiKey) -> str:
    return "active" if key.active_slot is not None else "deactivated"


def last_used_label(key: PlatformApiKey, now: datetime | None = None) -> str:
    if key.last_used_at is None:
        return "never used"
    return f"last used {key.last_used_at:%Y-%m-%d %H:%M} UTC"
