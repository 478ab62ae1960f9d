"""``survey_response`` triggers: the Qualtrics event subscriptions, and the reconciliation poll.

Enabling subscribes our webhook URL (``/hooks/qualtrics/<token>``) to the survey's completed
(and optionally partial) responses with a fresh random shared key, so every delivery is signed.
Because a webhook can be lost (our outage, theirs), a reconciliation workflow runs on a
schedule: it exports the responses recorded since a watermark and starts the runs that do not
exist yet. Run ids are the same as the webhook's, so nothing runs twice.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID
from sqlalchemy import select

from qualflow.connections.models import Connection
from qualflow.engine.config import RUN_QUEUE
from qualflow.engine.definitions import AutomationDefinition, SurveyResponseTrigger
from qualflow.engine.dispatch import RunRequest, prepare_runs
from qualflow.engine.errors import ConflictError
from qualflow.engine.models import Automation, AutomationVersion, Run, TriggerEndpoint
from qualflow.engine.responses import parse_recorded, read_exported
from qualflow.engine.services import EngineServices, current_services
from qualflow.engine.workflow import run_automation
from qualflow.qualtrics import NotFound, QualtricsError
from qualflow.store.base import utcnow
from qualflow.store.db import chunks, session_scope

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/hooks/qualtrics"
RECONCILE_WORKFLOW = "qualflow.reconcile"
#: Re-read this much before the watermark: exports may lag a little behind recording.
RECONCILE_OVERLAP = timedelta(minutes=2)


def reconcile_schedule_name(automation_id: int) -> str:
    return f"qualflow-reconcile-{automation_id}"


def reconcile_cron(every_minutes: int) -> str:
    """A 6-field cron firing every ``every_minutes`` minutes."""
    if every_minutes < 60:
        return f"0 */{every_minutes} * * * *"
    hours = max(1, every_minutes // 60)
    return f"0 0 */{hours} * * *"


def topics_for(trigger: SurveyResponseTrigger) -> list[str]:
    topics = [f"surveyengine.completedResponse.{trigger.survey_id}"]
    if trigger.include_partial:
        topics.append(f"surveyengine.partialResponse.{trigger.survey_id}")
    return topics


def survey_trigger_payload(
    survey_id: str,
    response_id: str,
    *,
    kind: str,
    recorded_at: str | None,
    source: str,
    recipient_id: str | None = None,
) -> dict[str, Any]:
    return {
        "type": "survey_response",
        "survey_id": survey_id,
        "response_id": response_id,
        "kind": kind,
        "recorded_at": recorded_at,
        "recipient_id": recipient_id,
        "source": source,
        "summary": f"{kind} response {response_id} to {survey_id}"
        + (" (found by reconciliation)" if source == "reconcile" else ""),
    }


async def subscribe(
    services: EngineServices, automation_id: int, *, restart: bool = False
) -> datetime | None:
    """Create the event subscriptions of an automation.

    Returns the moment responses count from when the trigger starts afresh (first enabled,
    ``restart`` = enabled again, or another survey): the reconciliation poll starts no run for
    a response recorded before it. ``None`` when it carries on from its watermark.
    """
    with services.sessionmaker() as session:
        automation = session.get(Automation, automation_id)
        endpoint = session.scalar(
            select(TriggerEndpoint).where(TriggerEndpoint.automation_id == automation_id)
        )
        snapshot = (
            session.get(AutomationVersion, (automation_id, automation.version))
            if automation
            else None
        )
    if automation is None or endpoint is None or snapshot is None:
        raise ConflictError(f"automation {automation_id} has no survey_response endpoint")
    trigger = AutomationDefinition.model_validate(snapshot.definition).trigger
    assert isinstance(trigger, SurveyResponseTrigger)
    if automation.connection_id is None:
        raise ConflictError("a survey_response automation needs a Qualtrics connection")
    base = services.config.public_base_url.rstrip("/")
    url = f"{base}{WEBHOOK_PATH}/{endpoint.token}"
    shared_key = secrets.token_urlsafe(32)
    client = await services.qualtrics_client(automation.connection_id)
    await _require_survey(services, client, automation.connection_id, trigger.survey_id)
    created: list[str] = []
    try:
        for topic in topics_for(trigger):
            created.append(
                await client.event_subscriptions.create(topic, url, shared_key=shared_key)
            )
    except QualtricsError as exc:
        await _delete_quietly(client, created)
        raise ConflictError(f"Qualtrics refused the event subscription: {exc}") from None
    with session_scope(services.sessionmaker) as session:
        row = session.scalar(
            select(TriggerEndpoint).where(TriggerEndpoint.automation_id == automation_id)
        )
        assert row is not None
        old = list(row.subscription_ids or [])
        row.subscription_ids = created
        row.shared_key = shared_key
        row.survey_id = trigger.survey_id
        # Responses recorded before the automation was enabled are not its business.
        starts_afresh = restart or row.watermark is None
        if starts_afresh:
            row.watermark = utcnow()
        since = row.watermark if starts_afresh else None
    await _delete_quietly(client, old)
    return since


async def _require_survey(
    services: EngineServices, client: Any, connection_id: int, survey_id: str
) -> None:
    """Refuse a survey the connection cannot see: Qualtrics would accept the subscription, and
    the reconciliation poll would then fail with "not found" on every pass."""
    try:
        await client.surveys.get(survey_id)
    except NotFound:
        connection = _connection_label(services, connection_id)
        raise ConflictError(
            f"survey {survey_id} was not found in connection {connection}; check the survey ID, "
            "and that the connection's Qualtrics user can see the survey"
        ) from None
    except QualtricsError as exc:
        connection = _connection_label(services, connection_id)
        raise ConflictError(
            f"could not look up survey {survey_id} in connection {connection}: {exc}"
        ) from None


def _connection_label(services: EngineServices, connection_id: int) -> str:
    with services.sessionmaker() as session:
        name = session.scalar(select(Connection.name).where(Connection.id == connection_id))
    return f"{name!r} (#{connection_id})" if name is not None else f"#{connection_id}"


async def unsubscribe(services: EngineServices, automation_id: int) -> None:
    """Delete the automation's event subscriptions (already-deleted ones are fine)."""
    with services.sessionmaker() as session:
        automation = session.get(Automation, automation_id)
        endpoint = session.scalar(
            select(TriggerEndpoint).where(TriggerEndpoint.automation_id == automation_id)
        )
        ids = list(endpoint.subscription_ids or []) if endpoint else []
        connection_id = automation.connection_id if automation else None
    if ids and connection_id is not None:
        client = await services.qualtrics_client(connection_id)
        for subscription_id in ids:
            try:
                await client.event_subscriptions.delete(subscription_id)
            except NotFound:
                pass
            except QualtricsError as exc:
                what = "refused to delete" if exc.status_code else "could not be reached to delete"
                raise ConflictError(
                    f"Qualtrics {what} subscription {subscription_id}: {exc}; "
                    "the automation stays enabled"
                ) from None
    with session_scope(services.sessionmaker) as session:
        row = session.scalar(
            select(TriggerEndpoint).where(TriggerEndpoint.automation_id == automation_id)
        )
        if row is not None:
            row.subscription_ids = []


async def _delete_quietly(client: Any, subscription_ids: list[str]) -> None:
    for subscription_id in subscription_ids:
        try:
            await client.event_subscriptions.delete(subscription_id)
        except QualtricsError:
            continue


# -- reconciliation -------------------------------------------------------------------------


@DBOS.workflow(name=RECONCILE_WORKFLOW)
async def reconcile(scheduled_at: datetime, context: Any) -> None:
    """Start the runs of responses whose webhook never arrived."""
    automation_id = int(context["automation_id"])
    found = await DBOS.run_step_async(
        {"name": "qualflow.find_missed"}, find_missed, automation_id, context.get("since")
    )
    for run_id, version, trigger in found["runs"]:
        with SetWorkflowID(run_id):
            await DBOS.enqueue_workflow_async(
                RUN_QUEUE, run_automation, run_id, automation_id, version, trigger
            )
    if found["watermark"]:
        await DBOS.run_step_async(
            {"name": "qualflow.advance_watermark"},
            _advance_watermark,
            automation_id,
            found["watermark"],
        )


async def find_missed(automation_id: int, since: str | None = None) -> dict[str, Any]:
    """Export responses since the watermark; prepare runs for those without one (and recorded
    at or after ``since``, when the trigger started afresh then)."""
    services = current_services()
    with services.sessionmaker() as session:
        automation = session.get(Automation, automation_id)
        endpoint = session.scalar(
            select(TriggerEndpoint).where(TriggerEndpoint.automation_id == automation_id)
        )
        if automation is None or endpoint is None or not automation.enabled:
            return {"runs": [], "watermark": None}
        snapshot = session.get(AutomationVersion, (automation_id, automation.version))
        assert snapshot is not None
        connection_id = automation.connection_id
        watermark = endpoint.watermark
    trigger = AutomationDefinition.model_validate(snapshot.definition).trigger
    if not isinstance(trigger, SurveyResponseTrigger) or connection_id is None:
        return {"runs": [], "watermark": None}
    now = utcnow()
    start = (
        watermark or now - timedelta(minutes=trigger.reconcile_every_minutes)
    ) - RECONCILE_OVERLAP
    try:
        return await _export_missed(
            services,
            automation_id,
            trigger,
            connection_id,
            watermark,
            start,
            now,
            parse_recorded(since),
        )
    except QualtricsError as exc:
        # A survey deleted, a token revoked, Qualtrics down: the next pass tries again from
        # the same watermark, so one line says why this one found nothing.
        log.warning(
            "automation %s: reconciliation of %s skipped: %s", automation_id, trigger.survey_id, exc
        )
        return {"runs": [], "watermark": None}


async def _export_missed(
    services: EngineServices,
    automation_id: int,
    trigger: SurveyResponseTrigger,
    connection_id: int,
    watermark: datetime | None,
    start: datetime,
    now: datetime,
    since: datetime | None,
) -> dict[str, Any]:
    client = await services.qualtrics_client(connection_id)
    fetcher = services.response_fetcher
    # The end is exclusive and clocks differ a little: look slightly into the future.
    async with fetcher.exported(client, trigger.survey_id, start, now + timedelta(hours=1)) as path:
        # Read twice, one response at a time: a busy survey's window holds tens of thousands,
        # and only those whose runs this pass starts are kept in full.
        latest, candidates, scanned = await asyncio.to_thread(
            _scan_export, path, automation_id, trigger, watermark, now, since
        )
        fetcher.stats["exported_responses"] += scanned
        # A run still "queued" may never have reached the queue (a worker killed between this
        # step's write and its checkpoint): queue it again; enqueueing an existing workflow id
        # is a no-op.
        existing = await asyncio.to_thread(runs_past_queue, services, list(candidates))
        requests = [
            RunRequest(automation_id, run_id.split(":", 1)[1], payload)
            for run_id, payload in candidates.items()
            if run_id not in existing
        ]
        wanted = {str(request.trigger["response_id"]) for request in requests}
        # Cached for the runs it starts (or queues again); every other run has fetched its own.
        picked = await asyncio.to_thread(
            lambda: [r for r in read_exported(path) if str(r.get("responseId")) in wanted]
        )
    await asyncio.to_thread(fetcher.store, connection_id, trigger.survey_id, picked)
    prepared = await asyncio.to_thread(prepare_runs, services, requests)
    return {
        "runs": [(r.run_id, version, r.trigger) for r, version in prepared],
        "watermark": latest.isoformat() if latest else None,
    }


def _scan_export(
    path: Path,
    automation_id: int,
    trigger: SurveyResponseTrigger,
    watermark: datetime | None,
    now: datetime,
    since: datetime | None = None,
) -> tuple[datetime | None, dict[str, dict[str, Any]], int]:
    """The latest recorded date in an export, the run each of its responses recorded at or
    after ``since`` stands for (run id → trigger payload), and how many responses it holds."""
    latest = watermark
    candidates: dict[str, dict[str, Any]] = {}
    scanned = 0
    for response in read_exported(path):
        scanned += 1
        values = response.get("values") or {}
        recorded = parse_recorded(values.get("recordedDate"))
        if recorded is not None and (latest is None or recorded > latest):
            latest = min(recorded, now)
        finished = values.get("finished") in (1, True, "1", "true", "True")
        if not finished and not trigger.include_partial:
            continue
        if since is not None and recorded is not None and recorded < since:
            continue  # recorded while the automation was off, or before it watched this survey
        response_id = str(response.get("responseId"))
        candidates[f"{automation_id}:{trigger.survey_id}:{response_id}"] = survey_trigger_payload(
            trigger.survey_id,
            response_id,
            kind="completed" if finished else "partial",
            recorded_at=recorded.isoformat() if recorded else None,
            source="reconcile",
        )
    return latest, candidates, scanned


def runs_past_queue(services: EngineServices, run_ids: list[str]) -> set[str]:
    """Those of ``run_ids`` whose runs exist and have left the queue (a pass over a busy
    survey's window asks about tens of thousands)."""
    found: set[str] = set()
    with services.sessionmaker() as session:
        for ids in chunks(run_ids):
            found.update(
                session.scalars(select(Run.id).where(Run.id.in_(ids), Run.status != "queued"))
            )
    return found


def _advance_watermark(automation_id: int, watermark: str) -> None:
    services = current_services()
    value = parse_recorded(watermark)
    with session_scope(services.sessionmaker) as session:
        endpoint = session.scalar(
            select(TriggerEndpoint).where(TriggerEndpoint.automation_id == automation_id)
        )
        if (
            endpoint is not None
            and value is not None
            and (endpoint.watermark is None or value > endpoint.watermark)
        ):
            endpoint.watermark = value
