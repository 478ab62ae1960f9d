"""Account tables: people, their permission overrides, personal API tokens and UI sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qualflow.store.base import Base, UTCDateTime, utcnow

ROLE_VALUES = ("admin", "manager", "member", "viewer")
LEVEL_VALUES = ("none", "view", "manage")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class User(Base):
    """A person who signs in to the UI and calls the API."""

    __tablename__ = "users"
    # Never reuse a deleted row's id on SQLite: ids are referenced outside foreign keys.
    __table_args__ = (
        CheckConstraint(_in("role", ROLE_VALUES), name="role"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: Stored lower-cased; unique.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    overrides: Mapped[list[PermissionOverride]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )


class PermissionOverride(Base):
    """One area where a person's level differs from their role's default."""

    __tablename__ = "user_permissions"
    __table_args__ = (CheckConstraint(_in("level", LEVEL_VALUES), name="level"),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    area: Mapped[str] = mapped_column(String(32), primary_key=True)
    level: Mapped[str] = mapped_column(String(16))

    user: Mapped[User] = relationship(back_populates="overrides")


class ApiToken(Base):
    """A personal API token: only its SHA-256 is stored; the token is shown once at creation."""

    __tablename__ = "api_tokens"
    # Never reuse a deleted row's id on SQLite: ids are referenced outside foreign keys.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last4: Mapped[str] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UiSession(Base):
    """A signed-in browser: the cookie carries a random id, the table keeps its SHA-256."""

    __tablename__ = "ui_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_agent: Mapped[str | None] = mapped_column(String(300))
