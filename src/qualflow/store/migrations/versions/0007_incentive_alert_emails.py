"""Incentives can name who gets their alerts (``alert_emails``); without a list, everyone with
Manage on incentives still does.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incentives", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alert_emails", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incentives", schema=None) as batch_op:
        batch_op.drop_column("alert_emails")
