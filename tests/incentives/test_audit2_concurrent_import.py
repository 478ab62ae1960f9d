"""The same codes imported twice at once (an Import button clicked twice, two people with one
file) end as one import and one of duplicates, not as a database error."""

from __future__ import annotations

from datetime import datetime

import pytest

from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.providers import gift_codes

CODES = "code,value,currency\n" + "".join(f"TWICE-{n:03d},10.00,USD\n" for n in range(20))


def test_an_import_racing_another_of_the_same_codes_counts_them_as_duplicates(
    manager: IncentiveManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = manager.create_pool("Twice")
    real_utcnow = gift_codes.utcnow
    raced: list[tuple[int, int, list[str]]] = []
    calls: list[None] = []

    def now_after_a_racing_import() -> datetime:
        # The import reads the time to parse the file, then once it knows the pool's codes,
        # before it writes its own: the moment the other import commits the same codes.
        calls.append(None)
        if len(calls) == 2 and not raced:
            raced.append((0, 0, []))
            other = manager.import_codes(pool.id, CODES)
            raced[0] = (other.imported, other.duplicates, other.errors)
        return real_utcnow()

    monkeypatch.setattr(gift_codes, "utcnow", now_after_a_racing_import)

    report = manager.import_codes(pool.id, CODES)

    assert raced == [(20, 0, [])]
    assert (report.imported, report.duplicates, report.errors) == (0, 20, [])
    assert [entry["unused"] for entry in manager.pool_stock(pool.id)] == [20]
