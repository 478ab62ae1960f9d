"""Re-enabling a survey_response automation, or pointing it at another survey, starts from
that moment: the reconciliation poll does not start runs for responses recorded while it was
disabled (or to the other survey before the switch)."""

from __future__ import annotations

from typing import Any

from dbos import DBOS

from qualflow.engine.automations import Automations
from qualflow.engine.runs import Runs
from qualflow.engine.survey_triggers import reconcile_schedule_name
from qualflow.sandbox.respondents import Simulator
from tests.engine.test_survey_response import (  # noqa: F401
    Hub,
    enabled_automation,
    hub,
    notify_automation,
)


def record_completed(hub: Hub, survey_id: str, seed: int) -> str:  # noqa: F811
    """A completed response recorded now, whose webhook (if any) reaches nobody."""
    simulator = Simulator(hub.sandbox, survey_id, seed=seed)
    values = next(v for v in simulator.generate(20) if v.get("finished") == 1)
    dated = ("startDate", "endDate", "recordedDate")
    fresh: dict[str, Any] = {k: v for k, v in values.items() if k not in dated}
    return hub.sandbox.record_response(survey_id, fresh, emit=False).id


def reconcile_now(automation_id: int) -> None:
    DBOS.trigger_schedule(reconcile_schedule_name(automation_id)).get_result()


def test_responses_recorded_while_disabled_get_no_runs(hub: Hub) -> None:  # noqa: F811
    automation_id, _token, _qid = enabled_automation(hub)
    automations = Automations(hub.engine.services)
    automations.set_enabled(automation_id, False)
    record_completed(hub, hub.survey_id, seed=21)

    automations.set_enabled(automation_id, True)
    reconcile_now(automation_id)

    assert Runs(hub.engine.services).query(automation_id=automation_id).total == 0
    # Still catching lost webhooks from the moment it was enabled again.
    after = record_completed(hub, hub.survey_id, seed=22)
    reconcile_now(automation_id)
    run = hub.wait_run(f"{automation_id}:{hub.survey_id}:{after}")
    assert run.status == "succeeded", run.error


def test_a_new_survey_starts_from_the_switch(hub: Hub) -> None:  # noqa: F811
    automation_id, _token, qid = enabled_automation(hub)
    owner = hub.sandbox.get_survey(hub.survey_id).owner_id
    other = hub.sandbox.copy_survey(hub.survey_id, name="Copy", owner_id=owner)
    record_completed(hub, other.id, seed=23)
    definition = notify_automation(hub, qid)
    definition["trigger"]["survey_id"] = other.id

    Automations(hub.engine.services).update(automation_id, definition)
    reconcile_now(automation_id)

    assert Runs(hub.engine.services).query(automation_id=automation_id).total == 0
