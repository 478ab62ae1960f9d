"""survey_response triggers: enabling for a survey the connection does not have is refused,
naming both, instead of a reconciliation poll that logs "not found" on every pass."""

from __future__ import annotations

import pytest

from qualflow.engine.automations import Automations
from qualflow.engine.errors import ConflictError
from qualflow.web.api.automations import api_error
from tests.engine.test_survey_response import (  # noqa: F401
    Hub,
    hub,
    notify_automation,
)

UNKNOWN_SURVEY = "SV_0000000000unknown"


def test_enabling_for_a_survey_the_connection_lacks_is_refused(hub: Hub) -> None:  # noqa: F811
    qid = hub.sandbox.get_survey(hub.survey_id).ordered_question_ids()[0]
    definition = notify_automation(hub, qid)
    definition["trigger"]["survey_id"] = UNKNOWN_SURVEY
    automations = Automations(hub.engine.services)
    created = automations.create(definition)

    with pytest.raises(ConflictError) as refused:
        automations.set_enabled(created.id, True)

    message = str(refused.value)
    assert UNKNOWN_SURVEY in message
    assert "'sandbox'" in message
    assert api_error(refused.value).status_code == 409
    assert automations.get(created.id).enabled is False
    assert not hub.sandbox.subscriptions
