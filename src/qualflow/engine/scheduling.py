"""Schedule triggers: a DBOS cron schedule per enabled automation, firing one run per tick."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dbos import DBOS, SetWorkflowID

from qualflow.engine.config import RUN_QUEUE
from qualflow.engine.control import Control
from qualflow.engine.definitions import ScheduleTrigger
from qualflow.engine.dispatch import RunRequest, prepare_runs
from qualflow.engine.models import Automation
from qualflow.engine.services import current_services
from qualflow.engine.workflow import run_automation


def schedule_name(automation_id: int) -> str:
    return f"qualflow-automation-{automation_id}"


@DBOS.workflow(name="qualflow.schedule_tick")
async def schedule_tick(scheduled_at: datetime, context: Any) -> None:
    """Start the run of one schedule tick (run id ``<automation>:schedule:<time>``)."""
    automation_id = int(context["automation_id"])
    prepared = await DBOS.run_step_async(
        {"name": "qualflow.prepare_tick"}, _prepare_tick, automation_id, scheduled_at.isoformat()
    )
    if prepared is None:
        return
    run_id, version, trigger = prepared
    with SetWorkflowID(run_id):
        await DBOS.enqueue_workflow_async(
            RUN_QUEUE, run_automation, run_id, automation_id, version, trigger
        )


def _prepare_tick(automation_id: int, scheduled_at: str) -> tuple[str, int, dict[str, Any]] | None:
    services = current_services()
    with services.sessionmaker() as session:
        automation = session.get(Automation, automation_id)
        if automation is None or not automation.enabled:
            return None
    trigger = {
        "type": "schedule",
        "scheduled_at": scheduled_at,
        "summary": f"scheduled for {scheduled_at}",
    }
    request = RunRequest(automation_id, f"schedule:{scheduled_at}", trigger)
    prepared = prepare_runs(services, [request])
    if not prepared:
        return None
    return request.run_id, prepared[0][1], trigger


SCHEDULE_WORKFLOW = "qualflow.schedule_tick"


def apply_schedule(control: Control, automation_id: int, trigger: ScheduleTrigger | None) -> None:
    """Create, replace or (``trigger=None``) remove the DBOS schedule of an automation."""
    name = schedule_name(automation_id)
    if trigger is None:
        control.delete_schedule(name)
        return
    control.set_schedule(
        name,
        SCHEDULE_WORKFLOW,
        trigger.cron_with_seconds,
        {"automation_id": automation_id},
        trigger.timezone,
    )


def trigger_now(automation_id: int) -> str:
    """Fire an automation's schedule immediately; returns the tick's workflow id.

    Needs the engine running in this process.
    """
    handle = DBOS.trigger_schedule(schedule_name(automation_id))
    return handle.get_workflow_id()
