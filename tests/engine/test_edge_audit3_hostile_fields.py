"""Signed deliveries whose fields are hostile (or just odd): each is a 4xx with a reason and a
recorded rejection, never a 500, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from qualflow.engine.models import InboundEvent
from qualflow.engine.runs import Runs
from qualflow.qualtrics.webhooks import sign
from tests.engine.test_survey_response import Hub, enabled_automation, hub  # noqa: F401


def signed_delivery(target: Hub, msg_fields: dict[str, str]) -> dict[str, str]:
    """A delivery signed with the key the sandbox (the Qualtrics double) was given."""
    [subscription] = target.sandbox.subscriptions.values()
    assert subscription.shared_key is not None
    msg = json.dumps(msg_fields)
    return {
        "Topic": f"{subscription.brand_id}.surveyengine.completedResponse.{target.survey_id}",
        "MSG": msg,
        "HMAC": sign(msg, subscription.shared_key),
    }


def recorded(target: Hub) -> list[InboundEvent]:
    with target.engine.services.sessionmaker() as session:
        return list(session.scalars(select(InboundEvent).order_by(InboundEvent.id)))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"CompletedDate": "9999-12-31T23:59:59-01:00"}, "CompletedDate"),
        ({"CompletedDate": "0001-01-01T00:00:00+01:00"}, "CompletedDate"),
        ({"ResponseID": "R_a\ud800b"}, "ResponseID"),
    ],
    ids=["date-after-9999", "date-before-1", "surrogate"],
)
def test_unstorable_field_values_are_a_recorded_400(
    hub: Hub,  # noqa: F811
    extra: dict[str, str],
    message: str,
) -> None:
    _automation_id, token, _ = enabled_automation(hub)
    fields = {"Status": "Complete", "SurveyID": hub.survey_id, "ResponseID": "R_1", **extra}

    [answer] = hub.post_webhook(token, signed_delivery(hub, fields))

    assert answer.status_code == 400, answer.text
    assert "malformed delivery" in answer.json()["error"]["message"]
    assert message in answer.json()["error"]["message"]
    [event] = recorded(hub)
    assert event.status == "rejected"
    assert event.reason is not None
    assert message in event.reason
    assert Runs(hub.engine.services).query().total == 0
