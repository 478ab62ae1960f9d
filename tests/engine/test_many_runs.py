"""Queries over many runs at once: reconciliation passes and dispatch batches bind one
parameter per run id, more than one statement may carry, so they ask in chunks."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from qualflow.engine.automations import Automations
from qualflow.engine.dispatch import RunRequest, prepare_runs
from qualflow.engine.models import Run
from qualflow.engine.runtime import Engine
from qualflow.engine.survey_triggers import runs_past_queue
from qualflow.store import db
from qualflow.store.db import chunks


def _automation(engine: Engine) -> int:
    definition = {
        "name": "many",
        "trigger": {"type": "schedule", "cron": "0 3 * * *"},
        "steps": [{"action": "test.record", "key": "only", "config": {"label": "many"}}],
    }
    return Automations(engine.services).create(definition).id


def _requests(automation_id: int, count: int) -> list[RunRequest]:
    return [
        RunRequest(automation_id, f"event:{n}", {"type": "manual", "summary": f"n{n}"})
        for n in range(count)
    ]


def test_chunks_cover_every_item_once_in_order() -> None:
    assert [list(c) for c in chunks([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]
    assert list(chunks([], 2)) == []


def test_runs_past_the_queue_are_found_among_more_ids_than_a_statement_binds(
    engine: Engine,
) -> None:
    automation_id = _automation(engine)
    prepared = prepare_runs(engine.services, _requests(automation_id, 3))
    finished = prepared[1][0].run_id
    with engine.services.sessionmaker() as session, session.begin():
        session.execute(update(Run).where(Run.id == finished).values(status="succeeded"))
    # PostgreSQL takes at most 65,535 parameters per statement.
    asked = [f"{automation_id}:SV_x:R_{n:06d}" for n in range(70_000)]
    asked[35_000:35_000] = [request.run_id for request, _version in prepared]

    assert runs_past_queue(engine.services, asked) == {finished}


def test_prepare_runs_reads_each_run_s_version_back_across_chunks(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "IN_LIST_CHUNK", 2)
    automation_id = _automation(engine)
    first = prepare_runs(engine.services, _requests(automation_id, 3))
    again = prepare_runs(engine.services, _requests(automation_id, 5))

    assert [(r.run_id, v) for r, v in first] == [
        (f"{automation_id}:event:{n}", 1) for n in range(3)
    ]
    assert [(r.run_id, v) for r, v in again] == [
        (f"{automation_id}:event:{n}", 1) for n in range(5)
    ]
    with engine.services.sessionmaker() as session:
        assert session.query(Run).count() == 5
