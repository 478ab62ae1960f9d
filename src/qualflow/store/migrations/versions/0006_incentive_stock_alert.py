"""Incentives remember the stock alert last emailed (``low`` or ``out``), so each fall below the
low-stock threshold, and each running out, is emailed once.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incentives", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stock_alert", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incentives", schema=None) as batch_op:
        batch_op.drop_column("stock_alert")
