"""Automations: create, edit (a new version each time), enable/disable, delete, run now."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from collections.abc import Coroutine
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import and_, func, select

from qualflow.engine.control import Control
from qualflow.engine.definitions import (
    AutomationDefinition,
    JsonEventTrigger,
    ScheduleTrigger,
    SurveyResponseTrigger,
    parse_definition,
)
from qualflow.engine.dispatch import RunRequest, start_runs
from qualflow.engine.errors import ConflictError, DefinitionError, NotFoundError
from qualflow.engine.models import Automation, AutomationVersion, Run, TriggerEndpoint
from qualflow.engine.scheduling import apply_schedule
from qualflow.engine.services import EngineServices
from qualflow.engine.survey_triggers import (
    RECONCILE_WORKFLOW,
    WEBHOOK_PATH,
    reconcile_cron,
    reconcile_schedule_name,
    subscribe,
    unsubscribe,
)
from qualflow.store.base import utcnow
from qualflow.store.db import session_scope

JSON_EVENT_PATH = "/inbound-event/v1/events/json/triggers"
T = TypeVar("T")


class TriggerEndpointOut(BaseModel):
    """How to reach the automation from outside (no secret is ever included)."""

    url: str
    token_last4: str | None = Field(default=None, description="Last 4 characters of the API token.")


class AutomationOut(BaseModel):
    id: int
    name: str
    description: str
    connection_id: int | None
    enabled: bool
    version: int
    trigger: dict[str, Any]
    steps: list[dict[str, Any]]
    endpoint: TriggerEndpointOut | None = None
    created_at: datetime
    updated_at: datetime
    created_by: str | None = None


class AutomationCreated(AutomationOut):
    api_token: str | None = Field(
        default=None,
        description="JSON-event triggers only: the token callers send (X-API-TOKEN or Basic "
        "password). Shown once; rotate it if lost.",
    )


class VersionOut(BaseModel):
    version: int
    definition: dict[str, Any]
    created_at: datetime
    created_by: str | None = None


def _sync(coroutine: Coroutine[Any, Any, T], services: EngineServices) -> T:
    """Run an async operation from synchronous code (CLI, tests) on a short-lived loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coroutine.close()
        raise RuntimeError("called from a running event loop: use the *_async variant")

    async def run_and_close() -> T:
        try:
            return await coroutine
        finally:
            # Clients are bound to this loop, which is about to end.
            closer = getattr(services.client_factory, "aclose_loop", None)
            if closer is not None:
                await closer()

    return asyncio.run(run_and_close())


def _validated(data: Any) -> AutomationDefinition:
    """Parse a definition and validate every step's config against its action."""
    if isinstance(data, AutomationDefinition):
        data = data.model_dump(mode="json")
    return parse_definition(data)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _automation_filters(enabled: bool | None, trigger_type: str | None) -> list[Any]:
    conditions: list[Any] = []
    if enabled is not None:
        conditions.append(Automation.enabled == enabled)
    if trigger_type is not None:
        conditions.append(Automation.trigger_type == trigger_type)
    return conditions


class Automations:
    """The automation store and its trigger side effects."""

    def __init__(self, services: EngineServices, control: Control | None = None) -> None:
        self.services = services
        self.control = control or Control(services.config)

    # -- reading ---------------------------------------------------------------------------

    def _out(
        self, automation: Automation, snapshot: AutomationVersion, endpoint: TriggerEndpoint | None
    ) -> AutomationOut:
        definition = snapshot.definition
        endpoint_out = None
        if endpoint is not None:
            base = self.services.config.public_base_url.rstrip("/")
            if endpoint.kind == "json_event":
                url = f"{base}{JSON_EVENT_PATH}?urlTokenId={endpoint.token}"
            else:
                url = f"{base}{WEBHOOK_PATH}/{endpoint.token}"
            endpoint_out = TriggerEndpointOut(url=url, token_last4=endpoint.secret_last4)
        return AutomationOut(
            id=automation.id,
            name=automation.name,
            description=str(definition.get("description", "")),
            connection_id=automation.connection_id,
            enabled=automation.enabled,
            version=automation.version,
            trigger=dict(definition["trigger"]),
            steps=list(definition["steps"]),
            endpoint=endpoint_out,
            created_at=automation.created_at,
            updated_at=automation.updated_at,
            created_by=automation.created_by,
        )

    def _load(self, session: Any, automation_id: int) -> tuple[Automation, AutomationVersion]:
        automation = session.get(Automation, automation_id)
        if automation is None:
            raise NotFoundError(f"automation {automation_id} does not exist")
        snapshot = session.get(AutomationVersion, (automation_id, automation.version))
        assert snapshot is not None
        return automation, snapshot

    def get(self, automation_id: int) -> AutomationOut:
        with self.services.sessionmaker() as session:
            automation, snapshot = self._load(session, automation_id)
            endpoint = session.scalar(
                select(TriggerEndpoint).where(TriggerEndpoint.automation_id == automation_id)
            )
            return self._out(automation, snapshot, endpoint)

    def query(
        self,
        *,
        enabled: bool | None = None,
        trigger_type: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AutomationOut]:
        """Automations by id (oldest first), the page of ``limit`` at ``offset``."""
        with self.services.sessionmaker() as session:
            query = (
                select(Automation)
                .where(*_automation_filters(enabled, trigger_type))
                .order_by(Automation.id)
                .limit(limit)
                .offset(offset)
            )
            automations = list(session.scalars(query))
            ids = [a.id for a in automations]
            # Each automation's current version only: past versions are kept but not listed.
            current = select(AutomationVersion).join(
                Automation,
                and_(
                    Automation.id == AutomationVersion.automation_id,
                    Automation.version == AutomationVersion.version,
                ),
            )
            snapshots = {
                (v.automation_id, v.version): v
                for v in session.scalars(current.where(AutomationVersion.automation_id.in_(ids)))
            }
            endpoints = {
                e.automation_id: e
                for e in session.scalars(
                    select(TriggerEndpoint).where(TriggerEndpoint.automation_id.in_(ids))
                )
            }
            return [
                self._out(a, snapshots[(a.id, a.version)], endpoints.get(a.id)) for a in automations
            ]

    def count(self, *, enabled: bool | None = None, trigger_type: str | None = None) -> int:
        """How many automations :meth:`query` finds with these filters, on every page."""
        with self.services.sessionmaker() as session:
            counted = select(func.count()).select_from(Automation)
            return session.scalar(counted.where(*_automation_filters(enabled, trigger_type))) or 0

    def versions(
        self, automation_id: int, *, limit: int | None = None, offset: int = 0
    ) -> list[VersionOut]:
        """The automation's saved versions, newest first: all of them or the page of ``limit``
        at ``offset``."""
        with self.services.sessionmaker() as session:
            self._load(session, automation_id)
            rows = session.scalars(
                select(AutomationVersion)
                .where(AutomationVersion.automation_id == automation_id)
                .order_by(AutomationVersion.version.desc())
                .limit(limit)
                .offset(offset)
            )
            return [
                VersionOut(
                    version=v.version,
                    definition=v.definition,
                    created_at=v.created_at,
                    created_by=v.created_by,
                )
                for v in rows
            ]

    def count_versions(self, automation_id: int) -> int:
        with self.services.sessionmaker() as session:
            counted = select(func.count()).select_from(AutomationVersion)
            return (
                session.scalar(counted.where(AutomationVersion.automation_id == automation_id)) or 0
            )

    # -- writing ---------------------------------------------------------------------------

    def _check_name_free(self, session: Any, name: str, automation_id: int | None) -> None:
        clash = session.scalar(select(Automation.id).where(Automation.name == name))
        if clash is not None and clash != automation_id:
            raise DefinitionError(
                "invalid automation definition",
                [{"loc": ["name"], "msg": f"an automation named {name!r} already exists"}],
            )

    def create(self, data: Any, *, actor: str | None = None) -> AutomationCreated:
        """Store a new automation (disabled until enabled) at version 1."""
        definition = _validated(data)
        api_token: str | None = None
        with session_scope(self.services.sessionmaker) as session:
            self._check_name_free(session, definition.name, None)
            automation = Automation(
                name=definition.name,
                connection_id=definition.connection_id,
                trigger_type=definition.trigger.type,
                version=1,
                enabled=False,
                created_by=actor,
            )
            session.add(automation)
            session.flush()
            snapshot = AutomationVersion(
                automation_id=automation.id,
                version=1,
                definition=definition.model_dump(mode="json"),
                created_by=actor,
            )
            session.add(snapshot)
            endpoint, api_token = self._sync_endpoint(session, automation.id, definition, None)
            session.flush()
            out = self._out(automation, snapshot, endpoint)
        return AutomationCreated(**out.model_dump(), api_token=api_token)

    def _sync_endpoint(
        self,
        session: Any,
        automation_id: int,
        definition: AutomationDefinition,
        endpoint: TriggerEndpoint | None,
    ) -> tuple[TriggerEndpoint | None, str | None]:
        """Give json_event and survey_response automations their inbound endpoint."""
        kind = definition.trigger.type
        if kind == "schedule":
            if endpoint is not None:
                session.delete(endpoint)
            return None, None
        trigger = definition.trigger
        if endpoint is not None and endpoint.kind == kind:
            if isinstance(trigger, SurveyResponseTrigger):
                if endpoint.survey_id != trigger.survey_id:
                    # Another survey's responses are read from when it is subscribed to.
                    endpoint.watermark = None
                endpoint.survey_id = trigger.survey_id
            return endpoint, None
        if endpoint is not None:
            session.delete(endpoint)
            session.flush()
        api_token: str | None = None
        endpoint = TriggerEndpoint(
            automation_id=automation_id,
            kind=kind,
            token=secrets.token_urlsafe(18),
            subscription_ids=[],
        )
        if isinstance(trigger, JsonEventTrigger):
            api_token = secrets.token_urlsafe(32)
            endpoint.secret_hash = hash_token(api_token)
            endpoint.secret_last4 = api_token[-4:]
        elif isinstance(trigger, SurveyResponseTrigger):
            endpoint.survey_id = trigger.survey_id
        session.add(endpoint)
        return endpoint, api_token

    def update(self, automation_id: int, data: Any, *, actor: str | None = None) -> AutomationOut:
        """Save an edited definition as a new version; past versions are kept."""
        return _sync(self.update_async(automation_id, data, actor=actor), self.services)

    async def update_async(
        self, automation_id: int, data: Any, *, actor: str | None = None
    ) -> AutomationOut:
        definition = _validated(data)
        new_definition = definition.model_dump(mode="json")
        with self.services.sessionmaker() as session:
            automation, current = self._load(session, automation_id)
            self._check_name_free(session, definition.name, automation_id)
            was_enabled = automation.enabled
            old_trigger = dict(current.definition["trigger"])
        retrigger = was_enabled and (
            old_trigger != new_definition["trigger"]
            or current.definition.get("connection_id") != new_definition.get("connection_id")
        )
        carried_since: str | None = None
        if retrigger:
            carried_since = await self._reconcile_start(automation_id, old_trigger)
            # Tear the old trigger down while its endpoint (subscriptions) still exists.
            await self._teardown(automation_id, old_trigger)
        with session_scope(self.services.sessionmaker) as session:
            automation, current = self._load(session, automation_id)
            if new_definition != current.definition:
                automation.version += 1
                session.add(
                    AutomationVersion(
                        automation_id=automation_id,
                        version=automation.version,
                        definition=new_definition,
                        created_by=actor,
                    )
                )
            automation.name = definition.name
            automation.connection_id = definition.connection_id
            automation.trigger_type = definition.trigger.type
            automation.updated_at = utcnow()
            endpoint = session.scalar(
                select(TriggerEndpoint).where(TriggerEndpoint.automation_id == automation_id)
            )
            self._sync_endpoint(session, automation_id, definition, endpoint)
        self._changed()
        if retrigger:
            try:
                await self._setup(automation_id, definition.trigger, carried_since=carried_since)
            except Exception:
                await self._set_flag(automation_id, False)
                raise
        return self.get(automation_id)

    def delete(self, automation_id: int) -> None:
        """Delete an automation with its history; refused while runs are in flight."""
        _sync(self.delete_async(automation_id), self.services)

    async def delete_async(self, automation_id: int) -> None:
        with self.services.sessionmaker() as session:
            automation, snapshot = self._load(session, automation_id)
            busy = session.scalar(
                select(func.count())
                .select_from(Run)
                .where(Run.automation_id == automation_id, Run.status.in_(("queued", "running")))
            )
            if busy:
                raise ConflictError(
                    f"automation {automation_id} has {busy} queued or running runs; "
                    "cancel them or wait before deleting"
                )
            trigger = dict(snapshot.definition["trigger"])
            enabled = automation.enabled
        if enabled:
            await self._teardown(automation_id, trigger)
        with session_scope(self.services.sessionmaker) as session:
            doomed = session.get(Automation, automation_id)
            if doomed is not None:
                session.delete(doomed)
        self._changed()

    def set_enabled(self, automation_id: int, enabled: bool) -> AutomationOut:
        """Enable or disable; the trigger's side effects (schedule, subscription) follow."""
        return _sync(self.set_enabled_async(automation_id, enabled), self.services)

    async def set_enabled_async(self, automation_id: int, enabled: bool) -> AutomationOut:
        with self.services.sessionmaker() as session:
            automation, snapshot = self._load(session, automation_id)
            currently = automation.enabled
            definition = AutomationDefinition.model_validate(snapshot.definition)
        if currently != enabled:
            if enabled:
                await self._setup(automation_id, definition.trigger, restart=True)
            else:
                await self._teardown(automation_id, snapshot.definition["trigger"])
            await self._set_flag(automation_id, enabled)
        return self.get(automation_id)

    async def _set_flag(self, automation_id: int, enabled: bool) -> None:
        with session_scope(self.services.sessionmaker) as session:
            row = session.get(Automation, automation_id)
            if row is not None:
                row.enabled = enabled
                row.updated_at = utcnow()
        self._changed()

    def _changed(self) -> None:
        """Drop cached inbound endpoints so the edge sees the change at once in this process."""
        from qualflow.engine.runtime import running_engine

        engine = running_engine()
        if engine is not None:
            engine.endpoints.invalidate()

    async def _setup(
        self,
        automation_id: int,
        trigger: Any,
        *,
        restart: bool = False,
        carried_since: str | None = None,
    ) -> None:
        """Create what makes the trigger fire: a schedule, or subscriptions + reconciliation.

        ``restart``: the automation is being enabled, so responses recorded while it was
        disabled are not looked for. ``carried_since``: the start point of the poll being
        replaced (see :meth:`_reconcile_start`), kept when the trigger carries on.
        """
        if isinstance(trigger, ScheduleTrigger):
            await asyncio.to_thread(apply_schedule, self.control, automation_id, trigger)
        elif isinstance(trigger, SurveyResponseTrigger):
            since = await subscribe(self.services, automation_id, restart=restart)
            context: dict[str, Any] = {"automation_id": automation_id}
            if since is not None:
                context["since"] = since.isoformat()
            elif carried_since:
                # Carrying on (an edit that kept the survey): the poll keeps the start point
                # enabling set, so responses from before it still get no run.
                context["since"] = carried_since
            await asyncio.to_thread(
                self.control.set_schedule,
                reconcile_schedule_name(automation_id),
                RECONCILE_WORKFLOW,
                reconcile_cron(trigger.reconcile_every_minutes),
                context,
                None,
            )

    async def _reconcile_start(self, automation_id: int, trigger: dict[str, Any]) -> str | None:
        """The start point the automation's reconciliation poll was created with, if any."""
        if trigger.get("type") != "survey_response":
            return None
        context = await asyncio.to_thread(
            self.control.schedule_context, reconcile_schedule_name(automation_id)
        )
        since = context.get("since") if isinstance(context, dict) else None
        return since if isinstance(since, str) else None

    async def _teardown(self, automation_id: int, trigger: dict[str, Any]) -> None:
        kind = trigger.get("type")
        if kind == "schedule":
            await asyncio.to_thread(apply_schedule, self.control, automation_id, None)
        elif kind == "survey_response":
            # Subscriptions first: when Qualtrics cannot delete them the automation stays
            # enabled, and must keep its reconciliation schedule too.
            await unsubscribe(self.services, automation_id)
            await asyncio.to_thread(
                self.control.delete_schedule, reconcile_schedule_name(automation_id)
            )

    def rotate_token(self, automation_id: int) -> str:
        """Issue a new JSON-event API token (the old one stops working); returned once."""
        with session_scope(self.services.sessionmaker) as session:
            self._load(session, automation_id)
            endpoint = session.scalar(
                select(TriggerEndpoint).where(TriggerEndpoint.automation_id == automation_id)
            )
            if endpoint is None or endpoint.kind != "json_event":
                raise ConflictError("only json_event automations have an API token")
            token = secrets.token_urlsafe(32)
            endpoint.secret_hash = hash_token(token)
            endpoint.secret_last4 = token[-4:]
        self._changed()
        return token

    def run_now(
        self, automation_id: int, data: dict[str, Any] | None = None, *, actor: str | None = None
    ) -> str:
        """Start a run by hand (with optional trigger data); returns the run id."""
        self.get(automation_id)
        trigger = {
            "type": "manual",
            "summary": f"started by {actor or 'hand'}",
            "data": data or {},
        }
        request = RunRequest(automation_id, f"manual:{uuid.uuid4().hex}", trigger)
        return start_runs(self.services, [request])[0]
