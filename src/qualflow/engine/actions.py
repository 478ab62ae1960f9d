"""The action registry: what a step of an automation can do.

An action is a plain async function declared with :func:`action` and a pydantic model for its
configuration::

    class SendRewardConfig(BaseModel):
        amount: Decimal

    @action("incentives.send_reward", config=SendRewardConfig)
    async def send_reward(ctx: ActionContext, config: SendRewardConfig) -> dict[str, Any]:
        ...

The function returns a JSON-serialisable output (available to later steps as
``steps.<key>``) or raises one of :mod:`qualflow.engine.errors` to steer the run. Steps are
executed at least once, so an action with an outbound side effect must make it idempotent with
``ctx.idempotency_key`` (a stable key per run and step).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from qualflow.engine.errors import DefinitionError

if TYPE_CHECKING:
    from sqlalchemy import Executable

    from qualflow.engine.services import EngineServices

ConfigT = TypeVar("ConfigT", bound=BaseModel)
ActionFunc = Callable[["ActionContext", Any], Awaitable[Any]]


@dataclass
class ActionContext:
    """Everything an action may know about the run it is part of."""

    run_id: str
    automation_id: int
    automation_name: str
    automation_version: int
    connection_id: int | None
    step_key: str
    position: int
    attempt: int
    trigger: dict[str, Any]
    outputs: dict[str, Any]
    services: EngineServices = field(repr=False)
    #: Writes committed with the step's history row when the step succeeds (see
    #: :meth:`write_with_step`).
    step_writes: list[tuple[Executable, dict[str, Any]]] = field(default_factory=list, repr=False)

    def write_with_step(self, statement: Executable, params: dict[str, Any]) -> None:
        """Run ``statement`` in the transaction that records this step as succeeded: one
        commit instead of two for the write that closes an action's side effect (e.g. an
        email marked sent). It is dropped if the step ends any other way."""
        self.step_writes.append((statement, params))

    @property
    def idempotency_key(self) -> str:
        """Stable across retries, recoveries and replays of this step of this run."""
        return f"{self.run_id}/{self.position}:{self.step_key}"

    @property
    def response(self) -> dict[str, Any] | None:
        """The survey response fetched by an earlier ``qualtrics.get_response`` step, if any."""
        for output in reversed(list(self.outputs.values())):
            if isinstance(output, dict) and "responseId" in output and "values" in output:
                return output
        return None

    async def qualtrics(self) -> Any:
        """The Qualtrics client of the automation's connection (shared rate limiter)."""
        if self.connection_id is None:
            from qualflow.engine.errors import FatalError

            raise FatalError("this automation has no Qualtrics connection")
        return await self.services.qualtrics_client(self.connection_id)

    def namespace(self) -> dict[str, Any]:
        """Names visible to templates and condition expressions."""
        response = self.response or {}
        values = response.get("values") or {}
        return {
            "run": {
                "id": self.run_id,
                "automation": self.automation_name,
                "automation_id": self.automation_id,
                "version": self.automation_version,
            },
            "trigger": self.trigger,
            "steps": self.outputs,
            "response": response,
            "values": values,
            "labels": response.get("labels") or {},
            "embedded": response.get("embeddedData") or values,
        }


@dataclass(frozen=True)
class ActionSpec:
    """A registered action."""

    name: str
    config_model: type[BaseModel]
    func: ActionFunc
    description: str

    def validate_config(self, config: Mapping[str, Any] | None) -> BaseModel:
        """Validate a step's config, raising :class:`DefinitionError` listing every problem."""
        try:
            return self.config_model.model_validate(dict(config or {}))
        except ValidationError as exc:
            errors = [
                {"loc": ["config", *[str(p) for p in err["loc"]]], "msg": err["msg"]}
                for err in exc.errors()
            ]
            raise DefinitionError(f"invalid config for action {self.name!r}", errors) from None

    def config_keys(self) -> list[str]:
        """The settings a step's config may have, as users write them (aliases first)."""
        fields = self.config_model.model_fields
        return sorted(field.alias or name for name, field in fields.items())

    def unknown_config_keys(self, config: Mapping[str, Any] | None) -> list[str]:
        """Keys of ``config`` the action's model has no field (or alias) for, unless the model
        takes extra keys; pydantic drops them silently, so a misspelt setting would be lost."""
        if self.config_model.model_config.get("extra") == "allow":
            return []
        known = set(self.config_model.model_fields) | set(self.config_keys())
        return [key for key in (config or {}) if key not in known]

    def config_schema(self) -> dict[str, Any]:
        return self.config_model.model_json_schema()


_registry: dict[str, ActionSpec] = {}


def action(
    name: str, *, config: type[ConfigT], description: str | None = None
) -> Callable[
    [Callable[[ActionContext, ConfigT], Awaitable[Any]]],
    Callable[[ActionContext, ConfigT], Awaitable[Any]],
]:
    """Register an async function as the action ``name`` with its pydantic config model."""

    def register(
        func: Callable[[ActionContext, ConfigT], Awaitable[Any]],
    ) -> Callable[[ActionContext, ConfigT], Awaitable[Any]]:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"action {name!r} must be an async function")
        existing = _registry.get(name)
        if existing is not None and existing.func is not func:
            # Re-importing the same module is harmless; two different functions are a bug.
            same_origin = (existing.func.__module__, existing.func.__qualname__) == (
                func.__module__,
                func.__qualname__,
            )
            if not same_origin:
                raise ValueError(f"action {name!r} is already registered by {existing.func}")
        doc = description or inspect.getdoc(func) or ""
        _registry[name] = ActionSpec(
            name=name,
            config_model=config,
            func=func,
            description=doc.split("\n\n", 1)[0].strip(),
        )
        return func

    return register


def get_action(name: str) -> ActionSpec:
    """The registered action ``name``; :class:`DefinitionError` if there is none."""
    load_builtin_actions()
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry))
        raise DefinitionError(
            f"unknown action {name!r}",
            [{"loc": ["action"], "msg": f"unknown action; known: {known}"}],
        ) from None


def registered_actions() -> list[ActionSpec]:
    load_builtin_actions()
    return [_registry[name] for name in sorted(_registry)]


def load_builtin_actions() -> None:
    """Import the modules defining the built-in actions and the features' actions
    (idempotent).

    The registry loads them itself, the first time it is asked for an action, so no process
    that runs or checks automations (web app, worker, demo, tests) can forget to: a feature's
    package does not register its actions when imported, so importing its models (what a CLI
    command reading the database needs) does not import the engine's runtime (DBOS). Actions
    are plain entries of this registry, not DBOS workflows or steps, so registering them after
    DBOS has launched is fine.
    """
    import qualflow.engine.builtin
    import qualflow.incentives.action  # noqa: F401
