"""DBOS operations that work with or without an engine running in this process.

The web process has a running engine and uses DBOS directly; CLI commands (``qualflow runs
replay``, ``automations enable``…) reach the same system database through a ``DBOSClient``.
"""

from __future__ import annotations

from typing import Any

from dbos import DBOS, DBOSClient

from qualflow.engine.config import RUN_QUEUE, EngineConfig
from qualflow.engine.run_queue import run_options
from qualflow.engine.runtime import running_engine


class Control:
    """Start/stop-independent access to workflows and schedules in the system database."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._client: DBOSClient | None = None

    @property
    def in_process(self) -> bool:
        return running_engine() is not None

    def client(self) -> DBOSClient:
        if self._client is None:
            self._client = DBOSClient(
                system_database_url=self.config.resolved_system_database_url,
                application_name=self.config.app_name,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.destroy()
            self._client = None

    def __enter__(self) -> Control:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- workflows ------------------------------------------------------------------------

    def cancel(self, workflow_id: str) -> None:
        if self.in_process:
            DBOS.cancel_workflow(workflow_id)
        else:
            self.client().cancel_workflow(workflow_id)

    def enqueue_run(self, workflow_id: str, *args: Any) -> None:
        """Queue a run's workflow under ``workflow_id`` (a no-op when that id exists)."""
        engine = running_engine()
        if engine is not None and engine.services.run_queue is not None:
            engine.services.run_queue.enqueue([(workflow_id, args)])
        else:
            self.client().enqueue(run_options(self.config, workflow_id), *args)

    def pending_of(self, executor_id: str) -> list[str]:
        """Workflows an executor had started and not finished."""
        if self.in_process:
            statuses = DBOS.list_workflows(
                status="PENDING", executor_id=executor_id, load_input=False, load_output=False
            )
        else:
            statuses = self.client().list_workflows(
                status="PENDING", executor_id=executor_id, load_input=False, load_output=False
            )
        return [s.workflow_id for s in statuses]

    def resume(self, workflow_id: str) -> None:
        """Put a workflow back on the run queue; a live worker continues from its checkpoints."""
        if self.in_process:
            DBOS.resume_workflow(workflow_id, queue_name=RUN_QUEUE)
        else:
            self.client().resume_workflow(workflow_id, queue_name=RUN_QUEUE)

    # -- schedules ------------------------------------------------------------------------

    def set_schedule(
        self, name: str, workflow_name: str, cron: str, context: Any, timezone: str | None
    ) -> None:
        self.delete_schedule(name)
        if self.in_process:
            from qualflow.engine.scheduling import SCHEDULE_WORKFLOW, schedule_tick
            from qualflow.engine.survey_triggers import RECONCILE_WORKFLOW, reconcile

            workflows: dict[str, Any] = {
                SCHEDULE_WORKFLOW: schedule_tick,
                RECONCILE_WORKFLOW: reconcile,
            }
            DBOS.create_schedule(
                schedule_name=name,
                workflow_fn=workflows[workflow_name],
                schedule=cron,
                context=context,
                cron_timezone=timezone,
            )
        else:
            self.client().create_schedule(
                schedule_name=name,
                workflow_name=workflow_name,
                schedule=cron,
                context=context,
                cron_timezone=timezone,
            )

    def schedule_context(self, name: str) -> Any:
        """The context a schedule was created with (``None`` when there is no such schedule)."""
        schedule = DBOS.get_schedule(name) if self.in_process else self.client().get_schedule(name)
        return schedule["context"] if schedule is not None else None

    def delete_schedule(self, name: str) -> None:
        if self.in_process:
            if DBOS.get_schedule(name) is not None:
                DBOS.delete_schedule(name)
        else:
            self.client().delete_schedule(name)
