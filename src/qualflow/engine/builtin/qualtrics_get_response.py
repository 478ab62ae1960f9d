"""``qualtrics.get_response``: fetch the full survey response a run is about."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from qualflow.engine.actions import ActionContext, action
from qualflow.engine.errors import FatalError
from qualflow.engine.responses import ResponseFetcher, parse_recorded
from qualflow.engine.templates import check_template, render


class GetResponseConfig(BaseModel):
    survey_id: str | None = Field(
        default=None, description="Default: the survey of the triggering response."
    )
    response_id: str | None = Field(
        default=None,
        description="Default: the triggering response. May be a template, e.g. "
        "'{{ trigger.fields.response_id }}' for a JSON event.",
    )

    @field_validator("survey_id", "response_id")
    @classmethod
    def _check(cls, value: str | None) -> str | None:
        return None if value is None else check_template(value)


@action("qualtrics.get_response", config=GetResponseConfig)
async def get_response(ctx: ActionContext, config: GetResponseConfig) -> dict[str, Any]:
    """Fetch the response (values, labels, embedded data); not-yet-available is retried.

    Served from the response cache or a bulk export when many runs need responses at once, so
    the brand's API budget is respected.
    """
    ns = ctx.namespace()
    survey_id = render(config.survey_id, ns) if config.survey_id else ctx.trigger.get("survey_id")
    response_id = (
        render(config.response_id, ns) if config.response_id else ctx.trigger.get("response_id")
    )
    if not survey_id or not response_id:
        raise FatalError(
            "no survey/response id: set survey_id and response_id, or use a survey_response trigger"
        )
    if ctx.connection_id is None:
        raise FatalError("this automation has no Qualtrics connection")
    client = await ctx.qualtrics()
    fetcher: ResponseFetcher = ctx.services.response_fetcher
    payload = await fetcher.get(
        client,
        ctx.connection_id,
        str(survey_id),
        str(response_id),
        parse_recorded(ctx.trigger.get("recorded_at")),
    )
    return {**payload, "surveyId": survey_id}
