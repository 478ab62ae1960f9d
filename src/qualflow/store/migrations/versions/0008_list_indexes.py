"""Indexes for the lists people open every day, so that a page of a year's history is read off
an index instead of sorting (or reading) every row:

* the outbox page, newest first, whole or by status (``email_outbox``: created, and status +
  created);
* an incentive's rewards, newest first, whole or by status, and the rewards list and review
  queue by status (``rewards``: created, incentive + created, incentive + status + created,
  status + created). The index on incentive + status stays: it counts an incentive's rewards
  per status from far fewer pages than the new, longer one on PostgreSQL (which stores each
  repeated key once), ~1.6 ms less per incentives page at 100,000 rewards;
* one automation's runs of one status, and their count (``runs``: automation + status +
  created).

On PostgreSQL, ``CREATE INDEX`` (not ``CONCURRENTLY``: Alembic runs a revision in a
transaction) holds a lock on its table that lets reads through but blocks writes until the
index is built: the hub's writes to that table wait meanwhile. On a busy year's data (200,000
runs, 100,000 emails, 100,000 rewards) the whole upgrade takes about a second, so this is fine
at this project's scale; a far larger database should be upgraded while writes are quiet.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_email_outbox_created", "email_outbox", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_email_outbox_status_created",
        "email_outbox",
        ["status", "created_at", "id"],
        unique=False,
    )
    op.create_index("ix_rewards_created", "rewards", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_rewards_incentive_created",
        "rewards",
        ["incentive_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_rewards_incentive_status_created",
        "rewards",
        ["incentive_id", "status", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_rewards_status_created", "rewards", ["status", "created_at", "id"], unique=False
    )
    op.create_index(
        "ix_runs_automation_status_created",
        "runs",
        ["automation_id", "status", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_runs_automation_status_created", table_name="runs")
    op.drop_index("ix_rewards_status_created", table_name="rewards")
    op.drop_index("ix_rewards_incentive_status_created", table_name="rewards")
    op.drop_index("ix_rewards_incentive_created", table_name="rewards")
    op.drop_index("ix_rewards_created", table_name="rewards")
    op.drop_index("ix_email_outbox_status_created", table_name="email_outbox")
    op.drop_index("ix_email_outbox_created", table_name="email_outbox")
