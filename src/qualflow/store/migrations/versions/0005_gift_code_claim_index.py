"""Gift-code claims read one entry of a partial index of the unclaimed codes, ordered the way a
claim takes them, instead of sorting every unused code of the pool (it replaces the index on
pool, currency, value and reward, which the new one covers). The uniqueness of ``reward_id``
becomes a unique index of the claimed codes only: SQLite took the unique constraint's index for
"reward_id IS NULL" (every unclaimed code of every pool) over the new one.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNCLAIMED = sa.text("reward_id IS NULL")
_CLAIMED = sa.text("reward_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("gift_codes", schema=None) as batch_op:
        batch_op.drop_constraint("uq_gift_codes_reward_id", type_="unique")
        batch_op.create_index(
            "uq_gift_codes_reward_id",
            ["reward_id"],
            unique=True,
            postgresql_where=_CLAIMED,
            sqlite_where=_CLAIMED,
        )
        batch_op.create_index(
            "ix_gift_codes_unclaimed",
            ["pool_id", "currency", "value_minor", "expires_on", "id"],
            unique=False,
            postgresql_where=_UNCLAIMED,
            sqlite_where=_UNCLAIMED,
        )
        batch_op.drop_index("ix_gift_codes_available")


def downgrade() -> None:
    with op.batch_alter_table("gift_codes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_gift_codes_available",
            ["pool_id", "currency", "value_minor", "reward_id"],
            unique=False,
        )
        batch_op.drop_index("ix_gift_codes_unclaimed")
        batch_op.drop_index("uq_gift_codes_reward_id")
        batch_op.create_unique_constraint("uq_gift_codes_reward_id", ["reward_id"])
