"""The surveys a connection can use: all it sees, or the active ones shared with its user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from qualflow.connections.clients import INTERACTIVE_RATE_LIMIT_WAIT, client_for
from qualflow.connections.models import Connection
from qualflow.connections.validation import translate_error
from qualflow.qualtrics import QualtricsError

__all__ = ["AvailableSurvey", "list_surveys"]


@dataclass(frozen=True)
class AvailableSurvey:
    id: str
    name: str
    owner_id: str | None
    is_active: bool
    #: True when another user owns it and shared it with the connection's user (collaboration).
    shared: bool
    last_modified: datetime | None
    creation_date: datetime | None


async def list_surveys(
    connection: Connection, *, active_only: bool = False, shared_only: bool = False
) -> list[AvailableSurvey]:
    """Surveys visible to the connection's Qualtrics user.

    ``shared_only`` keeps the surveys owned by someone else (shared with this user), which is
    what a service user sees; ``active_only`` keeps the active (published) ones.
    """
    own_id = connection.qualtrics_user_id
    found: list[AvailableSurvey] = []
    try:
        async with client_for(
            connection, max_rate_limit_wait=INTERACTIVE_RATE_LIMIT_WAIT
        ) as qualtrics:
            async for survey in qualtrics.surveys.iter():
                shared = survey.owner_id is not None and survey.owner_id != own_id
                active = bool(survey.is_active)
                if (active_only and not active) or (shared_only and not shared):
                    continue
                found.append(
                    AvailableSurvey(
                        id=survey.id,
                        name=survey.name,
                        owner_id=survey.owner_id,
                        is_active=active,
                        shared=shared,
                        last_modified=survey.last_modified,
                        creation_date=survey.creation_date,
                    )
                )
    except QualtricsError as error:
        raise translate_error(error, doing="listing surveys") from None
    found.sort(key=lambda item: item.name.lower())
    return found
