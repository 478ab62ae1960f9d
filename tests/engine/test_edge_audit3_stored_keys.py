"""Values the edge stores as keys (the URL token, the response id in the run id) that the
database cannot hold: refused with a recorded 4xx, never a 500 (PostgreSQL refuses NUL
characters and over-long strings where SQLite would take them)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from qualflow.engine.models import InboundEvent
from qualflow.engine.runs import Runs
from tests.engine.test_edge_audit3_hostile_fields import signed_delivery
from tests.engine.test_survey_response import Hub, enabled_automation, hub  # noqa: F401


def recorded(target: Hub) -> list[InboundEvent]:
    with target.engine.services.sessionmaker() as session:
        return list(session.scalars(select(InboundEvent).order_by(InboundEvent.id)))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"ResponseID": "R_a\u0000b"}, "ResponseID"),
        ({"RecipientID": "MR_\u0000"}, "RecipientID"),
        ({"ResponseID": "R_" + "x" * 300}, "ResponseID"),
    ],
    ids=["nul-response-id", "nul-recipient-id", "long-response-id"],
)
def test_a_response_the_database_cannot_key_is_a_recorded_400(
    hub: Hub,  # noqa: F811
    extra: dict[str, str],
    message: str,
) -> None:
    _automation_id, token, _ = enabled_automation(hub)
    fields = {"Status": "Complete", "SurveyID": hub.survey_id, "ResponseID": "R_1", **extra}

    [answer] = hub.post_webhook(token, signed_delivery(hub, fields))

    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]["message"]
    [event] = recorded(hub)
    assert event.status == "rejected"
    assert event.reason is not None
    assert message in event.reason
    assert Runs(hub.engine.services).query().total == 0


@pytest.mark.parametrize("path_token", ["%00", "abc%00def", "x" * 80 + "%00"])
def test_a_url_token_holding_a_nul_is_an_unknown_subscription(
    hub: Hub,  # noqa: F811
    path_token: str,
) -> None:
    enabled_automation(hub)
    [subscription] = hub.sandbox.subscriptions.values()
    assert subscription.shared_key is not None

    [answer] = hub.post_webhook(path_token, b"Topic=x&MSG=%7B%7D&HMAC=00")

    assert answer.status_code == 404, answer.text
    assert "unknown subscription" in answer.json()["error"]["message"]
    [event] = recorded(hub)
    assert event.status == "rejected"
    assert event.token is not None
    assert "\x00" not in event.token
