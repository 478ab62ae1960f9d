"""Old inbound events and cached responses are pruned; what runs still need is kept."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qualflow.engine.models import CachedResponse, InboundEvent
from qualflow.settings import Settings
from qualflow.store.base import utcnow
from qualflow.store.runtime import Store
from qualflow.web.retention import Pruned, prune_inbound_events, prune_once, retention_lifespan


def _event(status: str, age: timedelta, n: int) -> InboundEvent:
    return InboundEvent(
        received_at=utcnow() - age,
        source="json_event",
        status=status,
        reason=None if status != "rejected" else "bad token",
        token=f"tok{n}",
        dedupe_key=f"key-{status}-{n}",
        payload={"n": n},
        size=10,
    )


def _cached(response_id: str, age: timedelta) -> CachedResponse:
    return CachedResponse(
        response_id=response_id,
        survey_id="SV_1",
        connection_id=None,
        payload={"responseId": response_id},
        fetched_at=utcnow() - age,
    )


def _seed(db: Session) -> None:
    old, recent = timedelta(days=40), timedelta(days=2)
    db.add_all(
        [
            _event("dispatched", old, 1),
            _event("rejected", old, 2),
            _event("ignored", old, 3),
            _event("accepted", old, 4),  # not turned into a run yet: kept
            _event("dispatched", recent, 5),
            _cached("R_old", timedelta(hours=30)),
            _cached("R_new", timedelta(hours=1)),
        ]
    )
    db.commit()


def _left(db: Session) -> tuple[list[int], list[str]]:
    events = [int(t.removeprefix("tok")) for t in db.scalars(select(InboundEvent.token))]
    cached = list(db.scalars(select(CachedResponse.response_id)))
    return sorted(events), sorted(cached)


def test_prune_once_applies_the_retention_settings(store: Store, db: Session) -> None:
    _seed(db)
    pruned = prune_once(store.settings, store.sessionmaker)
    assert pruned == Pruned(inbound_events=3, cached_responses=1)
    assert _left(db) == ([4, 5], ["R_new"])
    # Nothing more to do the second time.
    assert prune_once(store.settings, store.sessionmaker) == Pruned(0, 0)


def test_zero_retention_keeps_everything(store: Store, db: Session) -> None:
    _seed(db)
    keep = store.settings.model_copy(
        update={"inbound_events_retention_days": 0, "response_cache_retention_hours": 0}
    )
    assert prune_once(keep, store.sessionmaker) == Pruned(0, 0)
    assert _left(db) == ([1, 2, 3, 4, 5], ["R_new", "R_old"])


def test_large_backlogs_are_deleted_in_batches(store: Store, db: Session) -> None:
    db.add_all(_event("rejected", timedelta(days=90), n) for n in range(25))
    db.commit()
    assert prune_inbound_events(store.sessionmaker, timedelta(days=30), batch=10) == 25
    assert db.scalar(select(func.count()).select_from(InboundEvent)) == 0


def test_the_web_lifespan_prunes_in_the_background(store: Store, db: Session) -> None:
    _seed(db)

    class _App:
        class state:  # mimics FastAPI app.state
            pass

    _App.state.store = store  # type: ignore[attr-defined]

    async def run() -> None:
        async with retention_lifespan(_App):  # type: ignore[arg-type]
            deadline = asyncio.get_running_loop().time() + 60
            while asyncio.get_running_loop().time() < deadline:
                with store.sessionmaker() as check:
                    if _left(check) == ([4, 5], ["R_new"]):
                        return
                await asyncio.sleep(0.05)
            pytest.fail("the background prune did not run")

    asyncio.run(run())


@pytest.mark.parametrize(
    ("name", "value"),
    [("INBOUND_EVENTS_RETENTION_DAYS", "-1"), ("PRUNE_INTERVAL_MINUTES", "soon")],
)
def test_bad_retention_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str
) -> None:
    monkeypatch.setenv(f"QUALFLOW_{name}", value)
    with pytest.raises(ValueError, match=name.lower()):
        Settings(data_dir=tmp_path)
