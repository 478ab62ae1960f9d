"""An http.request answer whose JSON holds an unpaired surrogate escape is kept as its text,
so the run can still be shown (GET /api/v1/runs/{id} serializes the step's output)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from qualflow.engine.automations import Automations
from qualflow.engine.runs import RunDetail
from qualflow.engine.runtime import Engine

ANSWER = b'{"id": "\\ud800"}'


def answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=ANSWER, headers={"content-type": "application/json"})


@pytest.fixture
def engine_extras() -> dict[str, object]:
    # A real httpx client whose transport plays a receiver with a broken JSON encoder.
    return {"http_client": httpx.AsyncClient(transport=httpx.MockTransport(answer))}


def test_unencodable_json_answer_is_kept_as_text(
    engine: Engine, wait_run: Callable[..., RunDetail]
) -> None:
    automations = Automations(engine.services)
    created = automations.create(
        {
            "name": "to the CRM",
            "trigger": {"type": "schedule", "cron": "0 2 * * *"},
            "steps": [{"action": "http.request", "config": {"url": "https://crm.example.org/h"}}],
        }
    )

    run = wait_run(automations.run_now(created.id, {}))

    assert run.status == "succeeded", run.error
    assert run.steps[0].output == {"status": 200, "body": ANSWER.decode()}
    run.model_dump_json()  # what the API answers with: must not raise
