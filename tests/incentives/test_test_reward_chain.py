"""The "send test reward" button against a wired automation: the same email and first-name
fields as its reward step, a fetched sandbox response, and nobody paid."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from qualflow.incentives import api as incentives_api
from tests.engine.engine_support import SmtpSink
from tests.incentives.e2e_support import RewardHub, email_qid, reward_hub
from tests.incentives.support import body_text

pytestmark = pytest.mark.slow


@pytest.fixture
def hub(database_url: str, smtp_sink: SmtpSink) -> Iterator[RewardHub]:
    with reward_hub(database_url, smtp_sink.port) as opened:
        yield opened


def test_the_test_reward_reads_the_response_as_the_automation_would(
    hub: RewardHub, smtp_sink: SmtpSink
) -> None:
    incentive = hub.incentive("gift_codes", stock=2)
    automation_id = hub.automation(
        incentive, name="screener rewards", first_name_field="preferredName"
    )
    response_id = hub.respond(
        **{f"{email_qid(hub.screener)}_TEXT": "ana@example.org", "preferredName": "Anita"}
    )
    runtime = hub.runtime
    body = incentives_api.TestRewardIn(automation_id=automation_id, response_id=response_id)
    report = asyncio.run(
        incentives_api.run_test_reward(
            runtime, incentive.reference_id, body, default_send_to="me@example.org"
        )
    )
    steps = {step["name"]: step for step in report["steps"]}
    assert steps["survey response"]["ok"], steps
    assert steps["respondent email"]["detail"] == "found ana@example.org"
    assert steps["approval"]["ok"]
    [mail] = smtp_sink.messages
    assert mail["to"] == ["me@example.org"]
    assert "Hi Anita," in body_text(mail)  # the step's first-name field, not recipientFirstName
    assert hub.manager.get(incentive.reference_id).committed_count == 0
