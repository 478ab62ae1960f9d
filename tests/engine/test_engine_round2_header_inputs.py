"""A run's step inputs never show the credentials of ``http.request`` headers."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from qualflow.engine.automations import Automations
from qualflow.engine.runs import RunDetail
from qualflow.engine.runtime import Engine

SENT: list[httpx.Request] = []


def answer(request: httpx.Request) -> httpx.Response:
    SENT.append(request)
    return httpx.Response(200, json={"ok": True})


@pytest.fixture
def engine_extras() -> dict[str, object]:
    SENT.clear()
    return {"http_client": httpx.AsyncClient(transport=httpx.MockTransport(answer))}


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
