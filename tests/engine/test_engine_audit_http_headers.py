"""http.request headers are case-insensitive: a header the user sets in any spelling
(``Content-Type``, ``Idempotency-Key``) is sent once, with the user's value, not next to a
default under another spelling."""

from __future__ import annotations

import base64
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
    # A real httpx client whose transport records what would go on the wire.
    return {"http_client": httpx.AsyncClient(transport=httpx.MockTransport(answer))}


def test_user_headers_in_any_case_are_sent_once(
    engine: Engine, wait_run: Callable[..., RunDetail]
) -> None:
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
                        "headers": {
                            "Content-Type": "application/json",
                            "Idempotency-Key": "order-{{ trigger.data.order }}",
                        },
                        "body": '{"order": {{ trigger.data.order }}}',
                    },
                }
            ],
        }
    )

    run = wait_run(automations.run_now(created.id, {"order": 42}))

    assert run.status == "succeeded", run.error
    [request] = SENT
    assert request.headers.get_list("content-type") == ["application/json"]
    assert request.headers.get_list("idempotency-key") == ["order-42"]
    assert request.content == b'{"order": 42}'


def test_signed_request_verifies_with_the_users_header_spellings(
    engine: Engine, wait_run: Callable[..., RunDetail]
) -> None:
    from standardwebhooks.webhooks import Webhook

    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    automations = Automations(engine.services)
    created = automations.create(
        {
            "name": "signed",
            "trigger": {"type": "schedule", "cron": "0 2 * * *"},
            "steps": [
                {
                    "action": "http.request",
                    "config": {
                        "url": "https://crm.example.org/hook",
                        "headers": {"Webhook-Id": "mine"},
                        "json": {"order": "{{ trigger.data.order }}"},
                        "signing_secret": secret,
                    },
                }
            ],
        }
    )

    run = wait_run(automations.run_now(created.id, {"order": 7}))

    assert run.status == "succeeded", run.error
    [request] = SENT
    assert len(request.headers.get_list("webhook-id")) == 1
    Webhook(secret).verify(request.content, dict(request.headers))
