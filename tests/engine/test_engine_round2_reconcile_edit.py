"""Editing an enabled survey_response automation without changing its survey (e.g. turning on
partial responses) keeps the start point enabling set: the rebuilt reconciliation poll still
starts no run for a response recorded before the automation was enabled."""

from __future__ import annotations

from qualflow.engine.automations import Automations
from qualflow.engine.runs import Runs
from tests.engine.test_engine_audit_reenable import reconcile_now, record_completed
from tests.engine.test_survey_response import (  # noqa: F401
    Hub,
    hub,
    notify_automation,
)


def test_editing_without_changing_the_survey_keeps_the_start_point(
    hub: Hub,  # noqa: F811
) -> None:
    qid = hub.sandbox.get_survey(hub.survey_id).ordered_question_ids()[0]
    automations = Automations(hub.engine.services)
    created = automations.create(notify_automation(hub, qid))
    # Recorded just before enabling: inside the poll's overlap, but not this automation's.
    record_completed(hub, hub.survey_id, seed=31)
    automations.set_enabled(created.id, True)

    automations.update(created.id, notify_automation(hub, qid, include_partial=True))
    reconcile_now(created.id)

    assert Runs(hub.engine.services).query(automation_id=created.id).total == 0
    after = record_completed(hub, hub.survey_id, seed=32)
    reconcile_now(created.id)
    run = hub.wait_run(f"{created.id}:{hub.survey_id}:{after}")
    assert run.status == "succeeded", run.error
