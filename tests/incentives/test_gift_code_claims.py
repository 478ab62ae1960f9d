"""Claiming a gift code: the order codes are taken in, the index the claim reads, and
concurrent claims on PostgreSQL skipping each other's locked codes instead of waiting."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Connection, text, update

from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.models import GiftCode, GiftCodePool, Reward
from qualflow.incentives.providers import gift_codes
from qualflow.incentives.providers.gift_codes import claim_code
from qualflow.incentives.schemas import IncentiveSpec
from qualflow.incentives.service import RewardService
from qualflow.store.base import utcnow
from tests.incentives.support import Db
from tests.incentives.test_rewards import request

TEN_USD = 1000


def pool_with_codes(manager: IncentiveManager, lines: list[str]) -> GiftCodePool:
    pool = manager.create_pool(f"pool-{utcnow().timestamp()}")
    report = manager.import_codes(pool.id, "code,value,currency,expiry\n" + "\n".join(lines))
    assert report.errors == []
    return pool


def held_rewards(
    manager: IncentiveManager, service: RewardService, pool: GiftCodePool, count: int
) -> list[Reward]:
    """Rewards waiting for review, so that nothing claimed a code for them yet."""
    spec = IncentiveSpec(
        name="Claims",
        provider="gift_codes",
        gift_code_pool_id=pool.id,
        amount=Decimal("10.00"),
        currency="USD",
        approval_mode="review_all",
    )
    incentive = asyncio.run(manager.create(spec, actor="tests"))
    rewards = [
        service.submit(request(incentive, f"claim{n}@example.org")).reward for n in range(count)
    ]
    assert all(r is not None and r.status == "held" for r in rewards)
    return rewards  # type: ignore[return-value]


def test_codes_that_expire_go_first_soonest_first_and_expired_ones_never(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    pool = pool_with_codes(
        manager,
        [
            "NEVER-EXPIRES-1,10.00,USD,",
            "EXPIRES-LATE,10.00,USD,2099-01-01",
            "EXPIRED,10.00,USD,2099-12-31",
            "EXPIRES-SOON,10.00,USD,2090-06-01",
            "NEVER-EXPIRES-2,10.00,USD,",
            "OTHER-VALUE,25.00,USD,2080-01-01",
            "OTHER-CURRENCY,10.00,EUR,2080-01-01",
        ],
    )
    # A code that expired since it was imported (an expired one is refused at import).
    with db.sessionmaker() as session:
        session.execute(
            update(GiftCode)
            .where(GiftCode.pool_id == pool.id, GiftCode.expires_on == date(2099, 12, 31))
            .values(expires_on=utcnow().date() - timedelta(days=1))
        )
        session.commit()
    rewards = held_rewards(manager, service, pool, 6)

    claimed = []
    for reward in rewards:
        with db.sessionmaker() as session:
            code = claim_code(session, pool.id, TEN_USD, "USD", reward.id)
            session.commit()
        claimed.append(code.code if code is not None else None)

    assert claimed == [
        "EXPIRES-SOON",
        "EXPIRES-LATE",
        "NEVER-EXPIRES-1",
        "NEVER-EXPIRES-2",
        None,
        None,
    ]


def _plan(connection: Connection) -> str:
    """The query plan of the claim statement, as text."""
    compiled = gift_codes._CLAIM.compile(dialect=connection.dialect)
    today = utcnow().date().isoformat()
    values = {"c_pool": 1, "c_currency": "USD", "c_value": TEN_USD, "c_today": today}
    params = compiled.construct_params({**values, "c_reward": 1, "c_now": today})
    if connection.dialect.name == "sqlite":
        positional = tuple(params[name] for name in compiled.positiontup or ())
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, positional)
        return "\n".join(str(row[-1]) for row in rows)
    # Whether the index *can* serve the claim, whatever the planner's estimates for a few rows.
    for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
        connection.exec_driver_sql(f"SET LOCAL {setting} = off")
    rows = connection.exec_driver_sql("EXPLAIN " + compiled.string, params)
    return "\n".join(str(row[0]) for row in rows)


def test_the_claim_reads_the_index_of_unclaimed_codes_without_sorting(db: Db) -> None:
    with db.engine.connect() as connection, connection.begin():
        plan = _plan(connection)
    assert plan.count("ix_gift_codes_unclaimed") == 2, plan  # one probe per kind of expiry
    assert "Sort" not in plan, plan
    assert "TEMP B-TREE" not in plan, plan


# SQLite runs one writer at a time: there is no concurrent claim to skip there.
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_claim_skips_a_code_another_worker_holds_instead_of_waiting(
    db: Db, manager: IncentiveManager, service: RewardService
) -> None:
    pool = pool_with_codes(manager, [f"CODE-{n},10.00,USD,2099-12-31" for n in range(3)])
    first, second, third = held_rewards(manager, service, pool, 3)

    with db.sessionmaker() as worker_a, db.sessionmaker() as worker_b:
        held = claim_code(worker_a, pool.id, TEN_USD, "USD", first.id)  # not committed yet
        # Waiting for worker A's row lock would fail here instead of hanging the test.
        worker_b.execute(text("SET LOCAL lock_timeout = '5s'"))
        taken = claim_code(worker_b, pool.id, TEN_USD, "USD", second.id)
        assert held is not None
        assert taken is not None
        assert {held.code, taken.code} == {"CODE-0", "CODE-1"}
        worker_b.commit()
        worker_a.rollback()  # worker A failed: its code is free again

    with db.sessionmaker() as session:
        again = claim_code(session, pool.id, TEN_USD, "USD", third.id)
        session.commit()
    assert again is not None
    assert again.code == held.code
