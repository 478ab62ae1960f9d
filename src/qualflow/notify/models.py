"""The email outbox: every email is written here first, then sent (and retried) from here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from qualflow.store.base import Base, UTCDateTime, utcnow
from qualflow.store.secrets import EncryptedText


class OutboxEmail(Base):
    """One email. ``idempotency_key`` makes a retried step reuse the row instead of re-sending."""

    __tablename__ = "email_outbox"
    __table_args__ = (
        Index("ix_email_outbox_status_next", "status", "next_attempt_at"),
        # The outbox page, newest first, whole or by status: a page is read off the index
        # instead of sorting every email.
        Index("ix_email_outbox_created", "created_at", "id"),
        Index("ix_email_outbox_status_created", "status", "created_at", "id"),
        # Never reuse a deleted email's id on SQLite: the outbox page links to it by id.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(250), unique=True)
    run_id: Mapped[str | None] = mapped_column(String(200), index=True)
    sender: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(String(998))
    #: Encrypted: a reward email's body holds its gift code or redemption link.
    body_text: Mapped[str] = mapped_column(EncryptedText)
    body_html: Mapped[str | None] = mapped_column(EncryptedText)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(250))
    #: Display recipients (To/Cc as written) and Reply-To; ``recipients`` is the envelope.
    headers: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
