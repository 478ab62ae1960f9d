"""A run's step inputs never show the credentials of ``http.request`` headers."""

from __future__ import annotations

import json
from collections.abc import Callable

from qualflow.engine.automations import Automations
from qualflow.engine.runs import RunDetail
from qualflow.engine.runtime import Engine

# The recording transport and its fixture, shared with the header tests of the audit.
from tests.engine.test_engine_audit_http_headers import SENT, engine_extras  # noqa: F401


def test_step_inputs_mask_credential_headers(
    engine: Engine, wait_run: Callable[..., RunDetail]
) -> None:
    credentials = {
        "Authorization": "Bearer live-4f9c2a7b1e8d",
        "Cookie": "session=c0ffee123456",
        "X-Auth": "auth-value-998877",
    }
    automations = Automations(engine.services)
    created = automations.create(
        {
            "name": "to the CRM",
            "trigger": {"type": "schedule", "cron": "0 2 * * *"},
            "steps": [
                {
                    "action": "http.request",
                    "config": {
                        "url": "https://crm.example.org/hook",
                        "headers": {**credentials, "X-Source": "qualflow"},
                    },
                }
            ],
        }
    )

    run = wait_run(automations.run_now(created.id, {}))

    assert run.status == "succeeded", run.error
    [request] = SENT
    for name, value in credentials.items():
        assert request.headers[name] == value
    [step] = run.steps
    shown = json.dumps(step.input)
    for value in credentials.values():
        assert value not in shown
    assert step.input is not None
    assert step.input["headers"]["X-Source"] == "qualflow"
