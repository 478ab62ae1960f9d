"""A large import is written in batches: every code of every batch is stored, encrypted at
rest and readable, and a batch boundary changes nothing about duplicates or counts."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.models import GiftCode
from qualflow.incentives.providers import gift_codes


def test_codes_of_every_batch_are_stored_encrypted(
    manager: IncentiveManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gift_codes, "_INSERT_BATCH", 3)
    pool = manager.create_pool("batched")
    lines = [f"CODE-{n:04d},10.00,USD,2099-12-31" for n in range(10)]
    # Line 13 repeats line 2 (a duplicate across a batch boundary).
    csv = "code,value,currency,expiry\n" + "\n".join([*lines, lines[0]]) + "\n"

    report = manager.import_codes(pool.id, csv)

    assert (report.imported, report.duplicates, report.errors) == (10, 1, [])
    with manager.factory() as session:
        stored = session.scalars(select(GiftCode).where(GiftCode.pool_id == pool.id)).all()
        assert sorted(code.code for code in stored) == [f"CODE-{n:04d}" for n in range(10)]
        assert {code.last4 for code in stored} == {f"{n:04d}" for n in range(10)}
        raw = session.scalars(
            text("SELECT code FROM gift_codes WHERE pool_id = :pool"), {"pool": pool.id}
        ).all()
    assert len(raw) == 10
    assert not any("CODE-" in value for value in raw)  # encrypted at rest
    again = manager.import_codes(pool.id, csv)
    assert (again.imported, again.duplicates) == (0, 11)
