"""A cron expression that never fires (a day the month never has) is refused when saved, rather
than accepted and breaking the scheduler when the automation is enabled."""

from __future__ import annotations

import pytest

from tests.engine.test_api import API, Api, api, definition  # noqa: F401


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "0 0 31 4 *", "0 0 0 31 11 *"])
def test_a_schedule_that_never_fires_is_refused(api: Api, cron: str) -> None:  # noqa: F811
    answer = api.client.post(
        f"{API}/automations",
        json=definition(trigger={"type": "schedule", "cron": cron}),
        headers=api.admin,
    )

    assert answer.status_code == 422, answer.text
    [detail] = answer.json()["error"]["details"]
    assert detail["field"] == "trigger.schedule.cron"
    assert "never" in detail["message"]


def test_a_rare_but_real_date_is_accepted(api: Api) -> None:  # noqa: F811
    answer = api.client.post(
        f"{API}/automations",
        json=definition(trigger={"type": "schedule", "cron": "0 0 29 2 *"}),
        headers=api.admin,
    )
    assert answer.status_code == 201, answer.text
