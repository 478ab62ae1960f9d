"""Schedule triggers: enabling creates a DBOS cron schedule; each tick is one idempotent run."""

from __future__ import annotations

import time
from collections.abc import Callable

from dbos import DBOS

from qualflow.engine.automations import Automations
from qualflow.engine.runs import RunDetail, Runs
from qualflow.engine.runtime import Engine
from qualflow.engine.scheduling import schedule_name, trigger_now
from tests.engine.engine_support import CALLS

Wait = Callable[..., RunDetail]


def test_enable_creates_schedule_and_a_tick_runs_the_automation(
    engine: Engine, wait_run: Wait
) -> None:
    automations = Automations(engine.services)
    created = automations.create(
        {
            "name": "daily digest",
            "trigger": {"type": "schedule", "cron": "0 7 * * MON-FRI", "timezone": "Europe/Berlin"},
            "steps": [{"action": "test.record", "key": "tick", "config": {"label": "tick"}}],
        }
    )
    assert DBOS.get_schedule(schedule_name(created.id)) is None

    automations.set_enabled(created.id, True)
    schedule = DBOS.get_schedule(schedule_name(created.id))
    assert schedule is not None
    assert schedule["schedule"] == "0 0 7 * * MON-FRI"
    assert schedule["cron_timezone"] == "Europe/Berlin"

    trigger_now(created.id)
    runs = Runs(engine.services)
    deadline = time.monotonic() + 60
    while runs.query(automation_id=created.id).total == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    [listed] = runs.query(automation_id=created.id).items
    run = wait_run(listed.id)
    assert run.status == "succeeded"
    assert run.trigger_type == "schedule"
    assert run.id.startswith(f"{created.id}:schedule:")
    assert CALLS["tick"][0]["trigger"]["scheduled_at"] == run.trigger["scheduled_at"]

    automations.set_enabled(created.id, False)
    assert DBOS.get_schedule(schedule_name(created.id)) is None


def test_every_second_schedule_fires_by_itself(engine: Engine, wait_run: Wait) -> None:
    automations = Automations(engine.services)
    created = automations.create(
        {
            "name": "every second",
            "trigger": {"type": "schedule", "cron": "* * * * * *"},
            "steps": [{"action": "test.record", "key": "sec", "config": {"label": "sec"}}],
        }
    )
    automations.set_enabled(created.id, True)
    runs = Runs(engine.services)
    deadline = time.monotonic() + 60
    while runs.query(automation_id=created.id, status="succeeded").total < 2:
        assert time.monotonic() < deadline, "the schedule never fired twice"
        time.sleep(0.1)
    automations.set_enabled(created.id, False)
    ids = [r.id for r in runs.query(automation_id=created.id).items]
    assert len(set(ids)) == len(ids)
