"""Qualtrics request budgets: the next free request slot of each connection, shared by every
process on one database (see qualflow.connections.budget).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "qualtrics_budgets",
        sa.Column("budget_key", sa.String(length=100), nullable=False),
        sa.Column("next_slot_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("budget_key", name=op.f("pk_qualtrics_budgets")),
    )


def downgrade() -> None:
    op.drop_table("qualtrics_budgets")
