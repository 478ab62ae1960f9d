"""Incentive tables: Tango accounts, gift-code pools and codes, incentives, rewards with their
transitions and requests, provider throttles, platform API keys and their audit log.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_platforms",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("key_serial", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_platforms")),
        sa.UniqueConstraint("name", name=op.f("uq_api_platforms_name")),
    )
    op.create_table(
        "gift_code_pools",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gift_code_pools")),
        sa.UniqueConstraint("name", name=op.f("uq_gift_code_pools_name")),
    )
    op.create_table(
        "provider_throttles",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("next_slot_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_provider_throttles")),
    )
    op.create_table(
        "tango_accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("base_url", sa.String(length=500), nullable=False),
        sa.Column("platform_name", sa.String(length=200), nullable=False),
        sa.Column("platform_key", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.String(length=100), nullable=False),
        sa.Column("account_id", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tango_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_tango_accounts_name")),
    )
    op.create_table(
        "incentives",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("reference_id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("tango_account_id", sa.Integer(), nullable=True),
        sa.Column("gift_code_pool_id", sa.Integer(), nullable=True),
        sa.Column("utid", sa.String(length=64), nullable=True),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reward_name", sa.String(length=200), nullable=False),
        sa.Column("email_subject", sa.String(length=998), nullable=False),
        sa.Column("email_body", sa.Text(), nullable=False),
        sa.Column("redemption_instructions", sa.Text(), nullable=False),
        sa.Column("max_rewards", sa.Integer(), nullable=True),
        sa.Column("budget_minor", sa.Integer(), nullable=True),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approval_mode", sa.String(length=24), nullable=False),
        sa.Column("fraud_rules", sa.JSON(), nullable=False),
        sa.Column("low_stock_threshold", sa.Integer(), nullable=False),
        sa.Column("committed_count", sa.Integer(), nullable=False),
        sa.Column("committed_minor", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=True),
        sa.CheckConstraint(
            "approval_mode IN ('automatic', 'review_all', 'review_suspicious')",
            name=op.f("ck_incentives_approval_mode"),
        ),
        sa.CheckConstraint(
            "provider IN ('tango', 'gift_codes', 'manual')", name=op.f("ck_incentives_provider")
        ),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_incentives_amount_positive")),
        sa.CheckConstraint(
            "budget_minor IS NULL OR budget_minor > 0", name=op.f("ck_incentives_budget_positive")
        ),
        sa.CheckConstraint(
            "max_rewards IS NULL OR max_rewards > 0",
            name=op.f("ck_incentives_max_rewards_positive"),
        ),
        sa.ForeignKeyConstraint(
            ["gift_code_pool_id"],
            ["gift_code_pools.id"],
            name=op.f("fk_incentives_gift_code_pool_id_gift_code_pools"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["tango_account_id"],
            ["tango_accounts.id"],
            name=op.f("fk_incentives_tango_account_id_tango_accounts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incentives")),
        sa.UniqueConstraint("reference_id", name=op.f("uq_incentives_reference_id")),
    )
    with op.batch_alter_table("incentives", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incentives_gift_code_pool_id"), ["gift_code_pool_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_incentives_tango_account_id"), ["tango_account_id"], unique=False
        )

    op.create_table(
        "platform_api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("last4", sa.String(length=4), nullable=False),
        sa.Column("active_slot", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=True),
        sa.Column("deactivated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deactivated_by", sa.String(length=320), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(deactivated_at IS NULL AND active_slot IS NOT NULL)"
            " OR (deactivated_at IS NOT NULL AND active_slot IS NULL)",
            name=op.f("ck_platform_api_keys_active_has_slot"),
        ),
        sa.CheckConstraint(
            "active_slot IS NULL OR active_slot IN (1, 2)",
            name=op.f("ck_platform_api_keys_slot_range"),
        ),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["api_platforms.id"],
            name=op.f("fk_platform_api_keys_platform_id_api_platforms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_platform_api_keys_key_hash")),
        sa.UniqueConstraint(
            "platform_id", "active_slot", name=op.f("uq_platform_api_keys_platform_id_active_slot")
        ),
    )
    with op.batch_alter_table("platform_api_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_platform_api_keys_platform_id"), ["platform_id"], unique=False
        )

    op.create_table(
        "api_key_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "action IN ('created', 'renamed', 'revealed', 'deactivated')",
            name=op.f("ck_api_key_audit_action"),
        ),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["platform_api_keys.id"],
            name=op.f("fk_api_key_audit_key_id_platform_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key_audit")),
    )
    with op.batch_alter_table("api_key_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_key_audit_key_id"), ["key_id"], unique=False)

    op.create_table(
        "rewards",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("reference_id", sa.String(length=16), nullable=False),
        sa.Column("incentive_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_normalized", sa.String(length=320), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("response_id", sa.String(length=64), nullable=True),
        sa.Column("survey_id", sa.String(length=64), nullable=True),
        sa.Column("participant_id", sa.String(length=200), nullable=True),
        sa.Column("ip_address", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=300), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=True),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("external_ref_id", sa.String(length=100), nullable=True),
        sa.Column("provider_order_id", sa.String(length=100), nullable=True),
        sa.Column("delivery", sa.Text(), nullable=True),
        sa.Column("delivery_hint", sa.String(length=200), nullable=True),
        sa.Column("email_outbox_id", sa.Integer(), nullable=True),
        sa.Column("resend_count", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ordered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "source IN ('automation', 'api', 'manual')", name=op.f("ck_rewards_source")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'held', 'approved', 'ordered', 'sent', 'blocked', 'failed',"
            " 'cancelled')",
            name=op.f("ck_rewards_status"),
        ),
        sa.ForeignKeyConstraint(
            ["incentive_id"],
            ["incentives.id"],
            name=op.f("fk_rewards_incentive_id_incentives"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rewards")),
        sa.UniqueConstraint(
            "incentive_id",
            "email_normalized",
            name=op.f("uq_rewards_incentive_id_email_normalized"),
        ),
        sa.UniqueConstraint(
            "incentive_id", "response_id", name=op.f("uq_rewards_incentive_id_response_id")
        ),
        sa.UniqueConstraint("reference_id", name=op.f("uq_rewards_reference_id")),
    )
    with op.batch_alter_table("rewards", schema=None) as batch_op:
        batch_op.create_index(
            "ix_rewards_incentive_status", ["incentive_id", "status"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_rewards_run_id"), ["run_id"], unique=False)
        batch_op.create_index(
            "ix_rewards_status_next_attempt", ["status", "next_attempt_at"], unique=False
        )

    op.create_table(
        "gift_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("last4", sa.String(length=8), nullable=False),
        sa.Column("value_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("reward_id", sa.Integer(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pool_id"],
            ["gift_code_pools.id"],
            name=op.f("fk_gift_codes_pool_id_gift_code_pools"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reward_id"],
            ["rewards.id"],
            name=op.f("fk_gift_codes_reward_id_rewards"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gift_codes")),
        sa.UniqueConstraint("pool_id", "code_hash", name=op.f("uq_gift_codes_pool_id_code_hash")),
        sa.UniqueConstraint("reward_id", name=op.f("uq_gift_codes_reward_id")),
    )
    with op.batch_alter_table("gift_codes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_gift_codes_available",
            ["pool_id", "currency", "value_minor", "reward_id"],
            unique=False,
        )

    op.create_table(
        "reward_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incentive_id", sa.Integer(), nullable=False),
        sa.Column("request_key", sa.String(length=300), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reward_id", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("email_normalized", sa.String(length=320), nullable=True),
        sa.Column("response_id", sa.String(length=64), nullable=True),
        sa.Column("participant_id", sa.String(length=200), nullable=True),
        sa.Column("ip_address", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('created', 'duplicate', 'rejected')",
            name=op.f("ck_reward_requests_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["incentive_id"],
            ["incentives.id"],
            name=op.f("fk_reward_requests_incentive_id_incentives"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reward_id"],
            ["rewards.id"],
            name=op.f("fk_reward_requests_reward_id_rewards"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_requests")),
        sa.UniqueConstraint(
            "incentive_id", "request_key", name=op.f("uq_reward_requests_incentive_id_request_key")
        ),
    )
    with op.batch_alter_table("reward_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reward_requests_email_normalized"), ["email_normalized"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_reward_requests_incentive_id"), ["incentive_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_reward_requests_ip_address"), ["ip_address"], unique=False
        )

    op.create_table(
        "reward_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("reward_id", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["reward_id"],
            ["rewards.id"],
            name=op.f("fk_reward_transitions_reward_id_rewards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_transitions")),
    )
    with op.batch_alter_table("reward_transitions", schema=None) as batch_op:
        batch_op.create_index("ix_reward_transitions_reward_at", ["reward_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reward_transitions", schema=None) as batch_op:
        batch_op.drop_index("ix_reward_transitions_reward_at")

    op.drop_table("reward_transitions")
    with op.batch_alter_table("reward_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reward_requests_ip_address"))
        batch_op.drop_index(batch_op.f("ix_reward_requests_incentive_id"))
        batch_op.drop_index(batch_op.f("ix_reward_requests_email_normalized"))

    op.drop_table("reward_requests")
    with op.batch_alter_table("gift_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_gift_codes_available")

    op.drop_table("gift_codes")
    with op.batch_alter_table("rewards", schema=None) as batch_op:
        batch_op.drop_index("ix_rewards_status_next_attempt")
        batch_op.drop_index(batch_op.f("ix_rewards_run_id"))
        batch_op.drop_index("ix_rewards_incentive_status")

    op.drop_table("rewards")
    with op.batch_alter_table("api_key_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_key_audit_key_id"))

    op.drop_table("api_key_audit")
    with op.batch_alter_table("platform_api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_platform_api_keys_platform_id"))

    op.drop_table("platform_api_keys")
    with op.batch_alter_table("incentives", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incentives_tango_account_id"))
        batch_op.drop_index(batch_op.f("ix_incentives_gift_code_pool_id"))

    op.drop_table("incentives")
    op.drop_table("tango_accounts")
    op.drop_table("provider_throttles")
    op.drop_table("gift_code_pools")
    op.drop_table("api_platforms")
