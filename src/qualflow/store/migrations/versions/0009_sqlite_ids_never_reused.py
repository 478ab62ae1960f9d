"""SQLite never hands a deleted row's id to a new row of a table whose ids are referenced
outside an enforced foreign key or shown to people.

Without AUTOINCREMENT, SQLite gives a new row max(rowid) + 1, so deleting the newest connection
and creating another gave the new one the old id, and an automation version still naming that
``connection_id`` (rolled back to, or replayed) would have used someone else's credentials.
The same holds for the ids in audit records (actors), URLs and API clients. The tables
converted, each recreated with ``AUTOINCREMENT`` (Alembic batch mode): users, api_tokens,
connections, inbound_events (runs' inputs name the event), email_outbox, tango_accounts,
gift_code_pools, incentives, rewards, gift_codes (rewards name the code in
``provider_order_id``) and platform_api_keys. ``automations`` has had it since 0002.

Every row keeps its id, and every index (partial ones with their condition), unique and check
constraint and foreign key is recreated as it was. Copying the rows with their ids sets each
table's ``sqlite_sequence`` entry to its current highest id, so new ids start above it. An id
deleted from the top of a table before this upgrade cannot be known any more and may be given
once more; from then on, never.

Cost: each listed table is copied once, then its indexes are rebuilt, all in the one
transaction of the upgrade, which holds SQLite's write lock meanwhile (other processes' writes
wait, reads go on). Measured: about 6 s for 200,000 rows each of rewards, email_outbox and
inbound_events (the large ones; a 140 MB file), i.e. about a second per 100,000 rows. The disk
needs room for one more copy of those tables meanwhile (the write-ahead log holds it).

PostgreSQL: nothing to do, its sequences never give an id twice.

Downgrade does nothing: recreating the tables without AUTOINCREMENT would cost the same copy
only to bring back the reuse of ids; 0008's code runs unchanged on the converted tables.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Parents before children, although foreign keys are not enforced while migrating (see
#: qualflow.store.migrate.migration_transaction): dropping a parent cascades nothing.
_TABLES = (
    "users",
    "api_tokens",
    "connections",
    "inbound_events",
    "email_outbox",
    "tango_accounts",
    "gift_code_pools",
    "incentives",
    "rewards",
    "gift_codes",
    "platform_api_keys",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in _TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass


def downgrade() -> None:
    pass
