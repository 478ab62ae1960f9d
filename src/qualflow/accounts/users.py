"""People: create, find, change, deactivate and delete users; permission overrides."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qualflow.accounts.errors import EmailTaken, InvalidAccountInput, LastAdmin, NotFound
from qualflow.accounts.models import PermissionOverride, User
from qualflow.accounts.passwords import (
    PasswordPolicyError,
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_password,
)
from qualflow.accounts.permissions import Area, Level, Role, effective_grants
from qualflow.store.base import utcnow
from qualflow.validation import refuse_control_characters

__all__ = [
    "authenticate_password",
    "create_user",
    "delete_user",
    "get_user",
    "get_user_by_email",
    "grants_for",
    "list_users",
    "normalize_email",
    "overrides_of",
    "set_overrides",
    "update_user",
]

# Deliberately loose: one @, something on each side, a dot in the domain, no spaces.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if len(value) > 320 or not _EMAIL.match(value):
        raise InvalidAccountInput(f"{email!r} is not a valid email address")
    return value


def _check_name(name: str) -> str:
    value = name.strip()
    if not value:
        raise InvalidAccountInput("name must not be empty")
    if len(value) > 200:
        raise InvalidAccountInput("name must be at most 200 characters")
    try:
        return refuse_control_characters(value)
    except ValueError as exc:
        raise InvalidAccountInput(f"name {exc}") from None


def _parse_role(role: str | Role) -> Role:
    try:
        return Role(role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise InvalidAccountInput(f"unknown role {role!r} (choose one of: {choices})") from None


def _checked_hash(password: str) -> str:
    try:
        check_password_policy(password)
    except PasswordPolicyError as exc:
        raise InvalidAccountInput(str(exc)) from None
    return hash_password(password)


def get_user(db: Session, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    return user


def get_user_by_email(db: Session, email: str) -> User | None:
    return db.scalar(select(User).where(User.email == email.strip().lower()))


def list_users(db: Session, *, limit: int | None = None, offset: int = 0) -> Sequence[User]:
    """People by id (oldest first), all of them or the page of ``limit`` at ``offset``."""
    return db.scalars(select(User).order_by(User.id).limit(limit).offset(offset)).all()


def count_users(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(User)) or 0


def create_user(
    db: Session, *, email: str, name: str, role: str | Role, password: str | None
) -> User:
    """Add a person. Without a password they cannot sign in to the UI (API tokens only)."""
    address = normalize_email(email)
    user = User(
        email=address,
        name=_check_name(name),
        role=_parse_role(role).value,
        password_hash=_checked_hash(password) if password is not None else None,
        active=True,
    )
    if get_user_by_email(db, address) is not None:
        raise EmailTaken(f"a user with email {address} already exists")
    db.add(user)
    db.flush()
    return user


def _active_admins(db: Session) -> int:
    query = select(func.count()).select_from(User).where(User.role == "admin", User.active)
    return db.scalar(query) or 0


def _guard_last_admin(db: Session, user: User, *, role: Role | None, active: bool | None) -> None:
    was_admin = user.role == Role.ADMIN.value and user.active
    stays_admin = (role or Role(user.role)) is Role.ADMIN and (
        user.active if active is None else active
    )
    if was_admin and not stays_admin and _active_admins(db) <= 1:
        raise LastAdmin(f"{user.email} is the last active admin; promote someone else first")


def update_user(
    db: Session,
    user: User,
    *,
    name: str | None = None,
    email: str | None = None,
    role: str | Role | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> User:
    new_role = _parse_role(role) if role is not None else None
    _guard_last_admin(db, user, role=new_role, active=active)
    if email is not None:
        address = normalize_email(email)
        other = get_user_by_email(db, address)
        if other is not None and other.id != user.id:
            raise EmailTaken(f"a user with email {address} already exists")
        user.email = address
    if name is not None:
        user.name = _check_name(name)
    if new_role is not None:
        user.role = new_role.value
    if password is not None:
        user.password_hash = _checked_hash(password)
    if active is not None:
        user.active = active
    if active is False or password is not None:
        # Deactivation and a new password both sign the person out everywhere.
        from qualflow.accounts.sessions import end_all_sessions

        end_all_sessions(db, user.id)
    db.flush()
    return user


def delete_user(db: Session, user: User) -> None:
    _guard_last_admin(db, user, role=Role.VIEWER, active=False)
    db.delete(user)
    db.flush()


def overrides_of(user: User) -> dict[Area, Level]:
    return {Area(item.area): Level.parse(item.level) for item in user.overrides}


def grants_for(user: User) -> dict[Area, Level]:
    return effective_grants(Role(user.role), overrides_of(user))


def set_overrides(db: Session, user: User, overrides: Mapping[str, str | Level | None]) -> User:
    """Replace the person's overrides. ``None`` for an area returns it to the role default."""
    parsed: dict[Area, Level] = {}
    for area_name, level in overrides.items():
        try:
            area = Area(area_name)
        except ValueError:
            choices = ", ".join(a.value for a in Area)
            raise InvalidAccountInput(
                f"unknown permission area {area_name!r} (choose from: {choices})"
            ) from None
        if level is None:
            continue
        try:
            parsed[area] = Level.parse(level)
        except ValueError as exc:
            raise InvalidAccountInput(str(exc)) from None
    user.overrides.clear()
    db.flush()
    for area, level in parsed.items():
        user.overrides.append(PermissionOverride(area=area.value, level=level.api_name))
    db.flush()
    return user


def authenticate_password(db: Session, email: str, password: str) -> User | None:
    """The active user with this email and password, or None (same cost either way)."""
    user = get_user_by_email(db, email)
    if user is None or not user.active:
        verify_password(None, password)
        return None
    if not verify_password(user.password_hash, password):
        return None
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    db.flush()
    return user
