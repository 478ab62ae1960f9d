"""JSON events that parse in Python but are not storable JSON documents (NaN/Infinity, nesting
too deep for the parser, unpaired UTF-16 surrogates) are refused with a 400 and recorded, never
a crash or a run that cannot be shown."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from qualflow.engine.automations import AutomationCreated
from qualflow.engine.runs import Runs
from qualflow.engine.runtime import Engine
from tests.engine.test_edge_json_event import (  # noqa: F401
    PATH,
    automation,
    client,
    events,
    token_of,
)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"score": NaN}', "NaN"),
        (b'{"score": -Infinity}', "Infinity"),
        (b"[" * 5000 + b"]" * 5000, "nested"),
        (b'{"a":' * 3000 + b"1" + b"}" * 3000, "nested"),
        # Parses to a str that cannot be encoded: the run could never be shown or sent on.
        (b'{"email": "\\ud800"}', "surrogate"),
        (b'{"\\udfff": 1}', "surrogate"),
    ],
    ids=["nan", "infinity", "deep-array", "deep-object", "lone-surrogate", "surrogate-key"],
)
def test_unstorable_json_is_refused_and_recorded(
    client: TestClient,  # noqa: F811
    engine: Engine,
    automation: AutomationCreated,  # noqa: F811
    body: bytes,
    reason: str,
) -> None:
    response = client.post(
        PATH,
        params={"urlTokenId": token_of(automation)},
        content=body,
        headers={"X-API-TOKEN": automation.api_token or "", "content-type": "application/json"},
    )

    assert response.status_code == 400, response.text
    assert reason in response.json()["error"]["message"]
    [event] = events(engine)
    assert event.status == "rejected"
    assert event.reason is not None
    assert reason in event.reason
    assert Runs(engine.services).query().total == 0
