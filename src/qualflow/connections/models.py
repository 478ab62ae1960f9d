"""The connections table: named, shareable Qualtrics configurations with encrypted credentials."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

# Re-exported: defined in a light module the command line reads for its help.
from qualflow.connections.limits import DEFAULT_REQUESTS_PER_MINUTE as DEFAULT_REQUESTS_PER_MINUTE
from qualflow.store.base import Base, UTCDateTime, utcnow
from qualflow.store.secrets import EncryptedString


class Connection(Base):
    """A Qualtrics account reached with one set of credentials.

    Exactly one way to authenticate: ``api_token`` (``auth_type="token"``) or an OAuth client
    (``auth_type="oauth"``). Secrets are :class:`EncryptedString` columns. ``brand_id`` and the
    ``qualtrics_user_*`` fields are what ``whoami`` resolved the credentials to when last
    validated.
    """

    __tablename__ = "connections"
    # Never reuse a deleted row's id on SQLite: ids are referenced outside foreign keys.
    __table_args__ = (
        CheckConstraint("auth_type IN ('token', 'oauth')", name="auth_type"),
        CheckConstraint("requests_per_minute > 0", name="requests_per_minute"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    datacenter: Mapped[str | None] = mapped_column(String(32))
    base_url: Mapped[str | None] = mapped_column(String(500))
    auth_type: Mapped[str] = mapped_column(String(8))
    api_token: Mapped[str | None] = mapped_column(EncryptedString)
    oauth_client_id: Mapped[str | None] = mapped_column(String(200))
    oauth_client_secret: Mapped[str | None] = mapped_column(EncryptedString)
    oauth_scope: Mapped[str | None] = mapped_column(String(500))
    #: Qualtrics login name, for JSON-event Basic auth (``username:token``).
    username: Mapped[str | None] = mapped_column(String(200))
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    requests_per_minute: Mapped[int] = mapped_column(Integer, default=DEFAULT_REQUESTS_PER_MINUTE)
    #: Set when qualflow created the Qualtrics user this connection authenticates as.
    service_user: Mapped[bool] = mapped_column(Boolean, default=False)

    brand_id: Mapped[str | None] = mapped_column(String(100))
    qualtrics_user_id: Mapped[str | None] = mapped_column(String(64))
    qualtrics_user_name: Mapped[str | None] = mapped_column(String(200))
    qualtrics_user_email: Mapped[str | None] = mapped_column(String(320))
    resolved_datacenter: Mapped[str | None] = mapped_column(String(32))
    validated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
