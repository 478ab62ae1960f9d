"""``condition``: stop the run unless an expression over its data holds."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from qualflow.engine.actions import ActionContext, action
from qualflow.engine.errors import FatalError, StopRun
from qualflow.engine.expressions import Expression, ExpressionError, compile_expression


class ConditionConfig(BaseModel):
    expression: str = Field(
        description="Safe expression over values/labels/embedded/response/trigger/steps.",
        examples=['values.QID1 >= 9 and labels.QID2 == "Yes"'],
    )
    reason: str | None = Field(
        default=None, description="Shown on the run when the condition stops it."
    )

    @field_validator("expression")
    @classmethod
    def _check(cls, expression: str) -> str:
        try:
            compile_expression(expression)
        except ExpressionError as exc:
            raise ValueError(str(exc)) from None
        return expression


@action("condition", config=ConditionConfig)
async def condition(ctx: ActionContext, config: ConditionConfig) -> dict[str, Any]:
    """Continue only when the expression holds; otherwise the run ends as skipped."""
    try:
        holds = Expression(config.expression).holds(ctx.namespace())
    except ExpressionError as exc:
        raise FatalError(f"condition {config.expression!r} cannot be evaluated: {exc}") from None
    if not holds:
        raise StopRun(config.reason or f"condition not met: {config.expression}")
    return {"holds": True}
