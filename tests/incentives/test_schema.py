"""The guarantees the schema itself enforces, whatever code writes to it."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from qualflow.incentives.ids import (
    INCENTIVE_ID_PATTERN,
    REWARD_ID_PATTERN,
    new_incentive_reference,
    new_reward_reference,
)
from qualflow.incentives.models import (
    ApiPlatform,
    GiftCode,
    GiftCodePool,
    Incentive,
    PlatformApiKey,
    Reward,
)
from qualflow.store.base import utcnow
from tests.incentives.support import Db


def _incentive() -> Incentive:
    return Incentive(
        reference_id=new_incentive_reference(),
        name="Study",
        provider="manual",
        amount_minor=1000,
        currency="USD",
        email_subject="s",
        email_body="b",
        fraud_rules={},
    )


def _reward(incentive: Incentive, email: str, response_id: str | None) -> Reward:
    return Reward(
        reference_id=new_reward_reference(),
        incentive_id=incentive.id,
        email=email,
        email_normalized=email.lower(),
        response_id=response_id,
        source="automation",
        requested_by="test",
        amount_minor=1000,
        currency="USD",
        provider="manual",
    )


def test_reference_ids_have_the_documented_shape() -> None:
    for _ in range(200):
        assert INCENTIVE_ID_PATTERN.match(new_incentive_reference())
        assert REWARD_ID_PATTERN.match(new_reward_reference())


def test_one_reward_per_email_and_per_response_is_enforced_by_the_database(db: Db) -> None:
    with db.sessionmaker() as session:
        incentive = _incentive()
        session.add(incentive)
        session.commit()
        session.add(_reward(incentive, "a@example.org", "R_1"))
        session.commit()

        session.add(_reward(incentive, "A@example.org".lower(), "R_2"))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()

        session.add(_reward(incentive, "b@example.org", "R_1"))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()

        # Rewards without a response id (platform API calls) do not collide with each other.
        session.add(_reward(incentive, "c@example.org", None))
        session.add(_reward(incentive, "d@example.org", None))
        session.commit()
        # The same email under another incentive is a different reward.
        other = _incentive()
        session.add(other)
        session.commit()
        session.add(_reward(other, "a@example.org", "R_1"))
        session.commit()


def test_a_gift_code_belongs_to_at_most_one_reward(db: Db) -> None:
    with db.sessionmaker() as session:
        incentive = _incentive()
        pool = GiftCodePool(name="pool")
        session.add_all([incentive, pool])
        session.commit()
        first = _reward(incentive, "a@example.org", "R_1")
        second = _reward(incentive, "b@example.org", "R_2")
        session.add_all([first, second])
        session.commit()
        codes = [
            GiftCode(
                pool_id=pool.id,
                code=f"CODE-{n}",
                code_hash=f"h{n}",
                last4=f"{n}",
                value_minor=1000,
                currency="USD",
            )
            for n in range(2)
        ]
        session.add_all(codes)
        session.commit()
        codes[0].reward_id = first.id
        session.commit()
        codes[1].reward_id = first.id
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        # The code is stored encrypted, never in clear.
        raw = session.execute(text("SELECT code FROM gift_codes ORDER BY id")).scalars().all()
        assert all(not value.startswith("CODE-") for value in raw)


def test_at_most_two_active_keys_per_platform(db: Db) -> None:
    with db.sessionmaker() as session:
        platform = ApiPlatform(name="acme")
        session.add(platform)
        session.commit()

        def key(n: int, slot: int | None) -> PlatformApiKey:
            return PlatformApiKey(
                platform_id=platform.id,
                display_name=f"key {n}",
                key=f"secret-{n}",
                key_hash=f"hash-{n}",
                last4=f"{n:04d}",
                active_slot=slot,
                deactivated_at=None if slot else utcnow(),
            )

        session.add_all([key(1, 1), key(2, 2)])
        session.commit()
        session.add(key(3, 1))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        session.add(key(4, 3))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        # An active key must hold a slot; a deactivated one must not.
        session.add(key(5, None))
        session.commit()
        broken = key(6, None)
        broken.deactivated_at = None
        session.add(broken)
        with pytest.raises(IntegrityError):
            session.commit()
