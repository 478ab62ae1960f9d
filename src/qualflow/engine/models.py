"""Engine tables: automations and their versions, runs and their steps, inbound events.

Run history is ours (not DBOS's), so listing and filtering runs is a plain indexed query on
either database. A step's row is also its checkpoint: a resumed or replayed run continues after
the steps whose rows say they finished (DBOS's tables make the workflows themselves durable).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

# Tables ours refer to (connections, and the users they refer to) or that the built-in email
# action writes to (outbox): importing them here completes the metadata in any process.
import qualflow.accounts.models
import qualflow.connections.models
import qualflow.notify.models  # noqa: F401
from qualflow.engine.run_filters import RUN_STATUSES as RUN_STATUSES
from qualflow.store.base import Base, UTCDateTime, utcnow
from qualflow.store.secrets import EncryptedString

FINAL_RUN_STATUSES = ("succeeded", "failed", "cancelled", "skipped")
STEP_STATUSES = ("running", "succeeded", "failed", "skipped", "stopped")


class Automation(Base):
    """An automation's identity and current state; its behaviour lives in its versions."""

    __tablename__ = "automations"
    # Never reuse the id of a deleted automation on SQLite: runs and caches key on it.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("connections.id", ondelete="RESTRICT"), index=True
    )
    trigger_type: Mapped[str] = mapped_column(String(32), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))


class AutomationVersion(Base):
    """An immutable snapshot of an automation's definition; runs point at the one they ran."""

    __tablename__ = "automation_versions"

    automation_id: Mapped[int] = mapped_column(
        ForeignKey("automations.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))


class TriggerEndpoint(Base):
    """How the outside world reaches an automation: webhook token, JSON-event token, watermark.

    ``token`` is the public, unguessable part of the inbound URL. ``secret_hash`` holds the
    SHA-256 of a JSON-event API token (shown once); ``shared_key`` the Qualtrics subscription's
    shared key, encrypted at rest (it is needed in clear to check each delivery's HMAC).
    """

    __tablename__ = "trigger_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    automation_id: Mapped[int] = mapped_column(
        ForeignKey("automations.id", ondelete="CASCADE"), unique=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    token: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str | None] = mapped_column(String(128))
    shared_key: Mapped[str | None] = mapped_column(EncryptedString)
    secret_last4: Mapped[str | None] = mapped_column(String(8))
    survey_id: Mapped[str | None] = mapped_column(String(64), index=True)
    subscription_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    watermark: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class InboundEvent(Base):
    """Every delivery that reached the edge, accepted or rejected, recorded before anything else.

    Accepted events are dispatched into runs (``status``: accepted → dispatched). Rejected ones
    keep the reason so bad input is visible, never silently dropped.
    """

    __tablename__ = "inbound_events"
    # Never reuse a deleted event's id on SQLite: runs' inputs name it (event_id).
    __table_args__ = (
        Index("ix_inbound_events_status_id", "status", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    source: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    automation_id: Mapped[int | None] = mapped_column(Integer, index=True)
    token: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(String(200))
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    size: Mapped[int] = mapped_column(Integer, default=0)
    remote: Mapped[str | None] = mapped_column(String(64))


class Run(Base):
    """One execution of an automation for one triggering event (id = idempotency key)."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_automation_created", "automation_id", "created_at"),
        Index("ix_runs_status_created", "status", "created_at"),
        # One automation's runs of one status, newest first (its failed runs), and their count,
        # without reading every run of the automation to check its status.
        Index("ix_runs_automation_status_created", "automation_id", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    automation_id: Mapped[int] = mapped_column(ForeignKey("automations.id", ondelete="CASCADE"))
    automation_version: Mapped[int] = mapped_column(Integer)
    trigger_type: Mapped[str] = mapped_column(String(32))
    trigger_summary: Mapped[str] = mapped_column(String(500), default="")
    trigger_payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    workflow_id: Mapped[str] = mapped_column(String(220))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RunAttempt(Base):
    """Each execution attempt of a run: the first, then one per replay."""

    __tablename__ = "run_attempts"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(220))
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    from_position: Mapped[int] = mapped_column(Integer, default=0)
    requested_by: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RunStep(Base):
    """The latest execution of one step of a run; earlier attempts' errors stay on RunAttempt."""

    __tablename__ = "run_steps"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    run_attempt: Mapped[int] = mapped_column(Integer, default=1)
    input_summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    output: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Unused since steps are checkpointed in this table (kept: older rows have it).
    checkpoint: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CachedResponse(Base):
    """Survey responses fetched in bulk (one export) and served to the runs that need them."""

    __tablename__ = "response_cache"

    response_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    survey_id: Mapped[str] = mapped_column(String(64), index=True)
    connection_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
