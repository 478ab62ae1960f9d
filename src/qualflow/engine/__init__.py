"""The workflow engine: automations (trigger + ordered steps) executed as durable DBOS runs.

This is the only package that imports ``dbos``. Feature packages register actions::

    from qualflow.engine import ActionContext, action, RetriableError

    @action("incentives.send_reward", config=SendRewardConfig)
    async def send_reward(ctx: ActionContext, config: SendRewardConfig) -> dict: ...
"""

from qualflow.engine.actions import (
    ActionContext,
    ActionSpec,
    action,
    get_action,
    registered_actions,
)
from qualflow.engine.config import EngineConfig
from qualflow.engine.errors import (
    ConflictError,
    DefinitionError,
    EngineError,
    FatalError,
    NotFoundError,
    RetriableError,
    SkipStep,
    StopRun,
)

__all__ = [
    "ActionContext",
    "ActionSpec",
    "ConflictError",
    "DefinitionError",
    "EngineConfig",
    "EngineError",
    "FatalError",
    "NotFoundError",
    "RetriableError",
    "SkipStep",
    "StopRun",
    "action",
    "get_action",
    "registered_actions",
]
