"""Retention as a deployment meets it: a large backlog of cached responses is deleted in short
transactions (as inbound events are), and a web process prunes without an engine of its own
(the scale-out layout's web processes), on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from qualflow.engine.models import CachedResponse, InboundEvent
from qualflow.settings import Settings
from qualflow.store.runtime import Store
from qualflow.web import retention
from qualflow.web.app import create_app
from tests.hub.test_retention import _cached, _event, _left, _seed


@contextmanager
def _deletes_from(store: Store, table: str) -> Iterator[list[str]]:
    deletes: list[str] = []

    def count(*args: Any) -> None:
        if args[2].lstrip().upper().startswith(f"DELETE FROM {table.upper()}"):
            deletes.append(args[2])

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        yield deletes
    finally:
        event.remove(store.engine, "before_cursor_execute", count)


def test_a_large_cached_response_backlog_is_deleted_in_batches(
    store: Store, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.add_all(_cached(f"R_old{n}", timedelta(hours=30)) for n in range(5))
    db.add(_cached("R_new", timedelta(hours=1)))
    db.commit()
    monkeypatch.setattr(retention, "BATCH", 2)

    with _deletes_from(store, "response_cache") as deletes:
        pruned = retention.prune_once(store.settings, store.sessionmaker)

    assert pruned == retention.Pruned(inbound_events=0, cached_responses=5)
    assert list(db.scalars(select(CachedResponse.response_id))) == ["R_new"]
    assert len(deletes) == 3  # 2 + 2 + 1, each its own short transaction


def test_a_large_event_backlog_is_deleted_in_batches_keeping_undispatched_ones(
    store: Store, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.add_all(_event("rejected", timedelta(days=90), n) for n in range(5))
    db.add(_event("accepted", timedelta(days=90), 99))
    db.commit()
    monkeypatch.setattr(retention, "BATCH", 2)

    with _deletes_from(store, "inbound_events") as deletes:
        pruned = retention.prune_once(store.settings, store.sessionmaker)

    assert pruned == retention.Pruned(inbound_events=5, cached_responses=0)
    assert list(db.scalars(select(InboundEvent.token))) == ["tok99"]  # the accepted one
    assert len(deletes) == 3


def test_an_idle_pass_deletes_nothing(store: Store, db: Session) -> None:
    _seed(db)
    retention.prune_once(store.settings, store.sessionmaker)

    with _deletes_from(store, "") as statements:
        assert retention.prune_once(store.settings, store.sessionmaker) == retention.Pruned(0, 0)

    assert statements == []


def test_a_web_process_without_an_engine_prunes(settings: Settings, db: Session) -> None:
    _seed(db)
    with TestClient(create_app(settings, engine="off")):
        deadline = time.monotonic() + 60
        while _left(db) != ([4, 5], ["R_new"]) and time.monotonic() < deadline:
            db.rollback()  # see the other connection's deletes
            time.sleep(0.05)
    assert _left(db) == ([4, 5], ["R_new"])


def test_zero_retention_keeps_an_old_backlog(store: Store, db: Session) -> None:
    _seed(db)
    keep = store.settings.model_copy(update={"inbound_events_retention_days": 0})
    assert retention.prune_once(keep, store.sessionmaker).inbound_events == 0
    keep = store.settings.model_copy(update={"response_cache_retention_hours": 0})
    assert retention.prune_once(keep, store.sessionmaker).cached_responses == 0
