"""survey_response automations against the sandbox: webhook → run → email, end to end.

The sandbox is the Qualtrics: our client talks to it in-process (ASGITransport), and it delivers
its event-subscription webhooks straight into our edge (``webhook_transport``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_string
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from dbos import DBOS
from fastapi import FastAPI
from sqlalchemy import select

from qualflow.connections.clients import client_factory, configure_clients
from qualflow.connections.models import Connection
from qualflow.engine.automations import Automations
from qualflow.engine.config import EngineConfig
from qualflow.engine.models import CachedResponse, InboundEvent, TriggerEndpoint
from qualflow.engine.runs import RunDetail, Runs
from qualflow.engine.runtime import Engine
from qualflow.engine.survey_triggers import reconcile_schedule_name
from qualflow.notify.email import SmtpSettings
from qualflow.sandbox import SandboxState, create_app
from qualflow.sandbox.delivery import form_fields
from qualflow.sandbox.respondents import Simulator
from qualflow.sandbox.seed import customer_satisfaction
from qualflow.store.db import session_scope
from qualflow.store.secrets import SecretBox
from qualflow.web import edge
from tests.engine.engine_support import SmtpSink

PUBLIC = "http://hub.test"


class CountingTransport(httpx.AsyncBaseTransport):
    """Passes requests through, counting the answers by status (to prove we never cause 429s)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.statuses: dict[int, int] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        return response


@dataclass
class Hub:
    engine: Engine
    app: FastAPI
    sandbox: SandboxState
    sandbox_app: FastAPI
    qualtrics: CountingTransport
    survey_id: str
    connection_id: int
    smtp: SmtpSink

    def wait_run(self, run_id: str, limit: float = 30.0) -> RunDetail:
        runs = Runs(self.engine.services)
        deadline = time.monotonic() + limit
        while True:
            try:
                detail: RunDetail | None = runs.get(run_id)
            except Exception:
                detail = None
            if detail is not None and detail.status in (
                "succeeded",
                "failed",
                "skipped",
                "cancelled",
            ):
                return detail
            assert time.monotonic() < deadline, f"run {run_id} not finished: {detail}"
            time.sleep(0.05)

    def post_webhook(
        self, token: str, body: dict[str, str] | bytes, copies: int = 1
    ) -> list[httpx.Response]:
        content = body if isinstance(body, bytes) else urlencode(body).encode()

        async def send() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as client:
                return await asyncio.gather(
                    *[
                        client.post(
                            f"/hooks/qualtrics/{token}",
                            content=content,
                            headers={"content-type": "application/x-www-form-urlencoded"},
                        )
                        for _ in range(copies)
                    ]
                )

        return asyncio.run(send())


@pytest.fixture
def hub(database_url: str, smtp_sink: SmtpSink) -> Iterator[Hub]:
    app = FastAPI()
    edge.install(app)
    sandbox = SandboxState()
    _user, token = sandbox.default_user()
    survey = customer_satisfaction(sandbox)
    sandbox_app = create_app(sandbox, webhook_transport=httpx.ASGITransport(app=app))
    counting = CountingTransport(httpx.ASGITransport(app=sandbox_app))
    engine = Engine(
        EngineConfig(
            database_url=database_url,
            executor_id="e2e",
            public_base_url=PUBLIC,
            retry_initial_delay=0.05,
            retry_max_delay=0.5,
            step_max_attempts=10,
        ),
        secret_box=SecretBox([SecretBox.generate_key()]),
        extras={
            "smtp": SmtpSettings(host="127.0.0.1", port=smtp_sink.port, sender="hub@example.org")
        },
    )
    configure_clients(transport=counting)
    engine.services.client_factory = client_factory(engine.services.sessionmaker)
    with session_scope(engine.services.sessionmaker) as session:
        connection = Connection(
            name="sandbox",
            base_url="http://sandbox.test",
            auth_type="token",
            api_token=token,
            shared=True,
            service_user=False,
            requests_per_minute=3000,
        )
        session.add(connection)
        session.flush()
        connection_id = connection.id
    app.state.qualflow_engine = engine
    engine.start()
    try:
        yield Hub(engine, app, sandbox, sandbox_app, counting, survey.id, connection_id, smtp_sink)
    finally:
        engine.stop()
        configure_clients(transport=None)


def notify_automation(hub: Hub, qid: str, **trigger: Any) -> dict[str, Any]:
    return {
        "name": "tell the CX team",
        "connection_id": hub.connection_id,
        "trigger": {"type": "survey_response", "survey_id": hub.survey_id, **trigger},
        "steps": [
            {"action": "qualtrics.get_response", "key": "response"},
            {
                "action": "notify.email",
                "config": {
                    "to": ["cx@example.org"],
                    "subject": "New response {{ response.responseId }}",
                    "body": f"Satisfaction: {{{{ labels.{qid} }}}} (code {{{{ values.{qid} }}}})\n"
                    "Recorded {{ values.recordedDate }}\n",
                },
            },
        ],
    }


def enabled_automation(hub: Hub, **trigger: Any) -> tuple[int, str, str]:
    qid = hub.sandbox.get_survey(hub.survey_id).ordered_question_ids()[0]
    automations = Automations(hub.engine.services)
    created = automations.create(notify_automation(hub, qid, **trigger))
    automations.set_enabled(created.id, True)
    assert created.endpoint is not None
    return created.id, created.endpoint.url.rsplit("/", 1)[1], qid


def test_respondent_to_webhook_to_run_to_email(hub: Hub) -> None:
    automation_id, token, qid = enabled_automation(hub)
    [subscription] = hub.sandbox.subscriptions.values()
    assert subscription.publication_url == f"{PUBLIC}/hooks/qualtrics/{token}"
    assert subscription.shared_key  # deliveries are signed

    [response] = Simulator(hub.sandbox, hub.survey_id, seed=7).run(1)
    run = hub.wait_run(f"{automation_id}:{hub.survey_id}:{response.id}")

    assert run.status == "succeeded", run.error
    assert [s.key for s in run.steps] == ["response", "email"]
    assert run.steps[0].output["responseId"] == response.id
    [mail] = hub.smtp.messages
    message = message_from_string(mail["data"])
    assert message["Subject"] == f"New response {response.id}"
    text = message.get_payload()
    assert f"(code {response.values[qid]})" in text
    assert run.steps[0].output["labels"][qid] in text


def test_five_concurrent_duplicate_deliveries_make_one_run_and_one_email(hub: Hub) -> None:
    automation_id, token, _ = enabled_automation(hub)
    [subscription] = hub.sandbox.subscriptions.values()
    values = Simulator(hub.sandbox, hub.survey_id, seed=3).generate(1)[0]
    response = hub.sandbox.record_response(hub.survey_id, values, emit=False)
    body = form_fields(hub.sandbox.response_event(response), subscription)

    answers = hub.post_webhook(token, body, copies=5)

    assert [a.status_code for a in answers] == [200] * 5
    run = hub.wait_run(f"{automation_id}:{hub.survey_id}:{response.id}")
    assert run.status == "succeeded", run.error
    time.sleep(0.5)  # let any (wrong) second run show itself before counting
    assert Runs(hub.engine.services).query(automation_id=automation_id).total == 1
    assert len(hub.smtp.messages) == 1
    with hub.engine.services.sessionmaker() as session:
        events = list(session.scalars(select(InboundEvent)))
    assert len(events) == 5
    assert {e.run_id for e in events} == {run.id}


def test_bad_deliveries_get_4xx_with_a_reason_and_are_recorded(hub: Hub) -> None:
    _automation_id, token, _ = enabled_automation(hub)
    [subscription] = hub.sandbox.subscriptions.values()
    values = Simulator(hub.sandbox, hub.survey_id, seed=5).generate(1)[0]
    response = hub.sandbox.record_response(hub.survey_id, values, emit=False)
    good = form_fields(hub.sandbox.response_event(response), subscription)
    forged = {**good, "HMAC": "0" * 128}
    other = hub.sandbox.new_survey("Another survey")
    foreign_event = hub.sandbox.response_event(response)
    foreign_event.fields["SurveyID"] = other.id
    foreign_event.topic = f"surveyengine.completedResponse.{other.id}"
    foreign = form_fields(foreign_event, subscription)

    cases = [
        (token, forged, 401, "signature check failed"),
        (token, foreign, 400, "unknown survey"),
        (token, b"MSG=%7Bnot-json&HMAC=ab", 401, "signature check failed"),
        (token, b"Topic=x", 401, "signature check failed"),
        ("no-such-token", good, 404, "unknown subscription"),
    ]
    for url_token, body, status, message in cases:
        [answer] = hub.post_webhook(url_token, body)
        assert answer.status_code == status, (message, answer.text)
        assert message in answer.json()["error"]["message"]

    with hub.engine.services.sessionmaker() as session:
        rejected = list(session.scalars(select(InboundEvent).order_by(InboundEvent.id)))
    assert [e.status for e in rejected] == ["rejected"] * len(cases)
    assert all(e.reason for e in rejected)
    assert Runs(hub.engine.services).query().total == 0


def test_malformed_signed_message_is_a_400(hub: Hub) -> None:
    _automation_id, token, _ = enabled_automation(hub)
    [subscription] = hub.sandbox.subscriptions.values()
    from qualflow.qualtrics.webhooks import sign

    assert subscription.shared_key is not None
    msg = f'{{"Status": "Complete", "SurveyID": "{hub.survey_id}"}}'  # signed, no ResponseID
    topic = f"sandbox.surveyengine.completedResponse.{hub.survey_id}"
    body = {"Topic": topic, "MSG": msg, "HMAC": sign(msg, subscription.shared_key)}

    [answer] = hub.post_webhook(token, body)

    assert answer.status_code == 400
    assert "malformed delivery" in answer.json()["error"]["message"]


def test_disable_deletes_the_subscription_and_enable_creates_a_new_key(hub: Hub) -> None:
    automation_id, _token, _ = enabled_automation(hub, include_partial=True)
    assert sorted(s.topics for s in hub.sandbox.subscriptions.values()) == [
        f"surveyengine.completedResponse.{hub.survey_id}",
        f"surveyengine.partialResponse.{hub.survey_id}",
    ]
    assert DBOS.get_schedule(reconcile_schedule_name(automation_id)) is not None

    Automations(hub.engine.services).set_enabled(automation_id, False)

    assert hub.sandbox.subscriptions == {}
    assert DBOS.get_schedule(reconcile_schedule_name(automation_id)) is None
    with hub.engine.services.sessionmaker() as session:
        endpoint = session.scalar(select(TriggerEndpoint))
        assert endpoint is not None
        assert endpoint.subscription_ids == []


def test_reconciliation_of_a_deleted_survey_logs_one_line_and_keeps_the_watermark(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    automation_id, _token, _ = enabled_automation(hub)
    with hub.engine.services.sessionmaker() as session:
        endpoint = session.scalar(select(TriggerEndpoint))
        assert endpoint is not None
        watermark = endpoint.watermark
    hub.sandbox.delete_survey(hub.survey_id)

    with caplog.at_level(logging.WARNING, logger="qualflow.engine.survey_triggers"):
        # The pass ends normally (it raised NotFound, logged by DBOS as a failed workflow).
        DBOS.trigger_schedule(reconcile_schedule_name(automation_id)).get_result()

    lines = [r.getMessage() for r in caplog.records if r.name == "qualflow.engine.survey_triggers"]
    assert len(lines) == 1
    assert f"automation {automation_id}: reconciliation of {hub.survey_id} skipped" in lines[0]
    assert "not found" in lines[0]
    with hub.engine.services.sessionmaker() as session:
        endpoint = session.scalar(select(TriggerEndpoint))
        assert endpoint is not None
        assert endpoint.watermark == watermark
    assert Runs(hub.engine.services).query(automation_id=automation_id).total == 0


def test_reconciliation_starts_runs_for_lost_webhooks(hub: Hub) -> None:
    automation_id, _token, _ = enabled_automation(hub)
    simulator = Simulator(hub.sandbox, hub.survey_id, seed=11)
    finished = [v for v in simulator.generate(12) if v.get("finished") == 1][:3]
    unfinished = [v for v in simulator.generate(30) if v.get("finished") == 0][:1]
    lost = []
    for values in finished + unfinished:
        # Recorded now (after the automation was enabled), but the webhooks never arrive.
        dated = ("startDate", "endDate", "recordedDate")
        fresh = {k: v for k, v in values.items() if k not in dated}
        lost.append(hub.sandbox.record_response(hub.survey_id, fresh, emit=False))

    DBOS.trigger_schedule(reconcile_schedule_name(automation_id))
    runs = [hub.wait_run(f"{automation_id}:{hub.survey_id}:{r.id}") for r in lost[:3]]

    assert [r.status for r in runs] == ["succeeded"] * 3
    assert all(r.trigger["source"] == "reconcile" for r in runs)
    assert len(hub.smtp.messages) == 3
    fetcher = hub.engine.services.response_fetcher
    # Served from the reconciliation export, not one GET each.
    assert fetcher.stats["single_gets"] == 0
    assert fetcher.stats["cache_hits"] == 3
    # Only the responses it started runs for were cached (not the partial one).
    with hub.engine.services.sessionmaker() as session:
        cached = set(session.scalars(select(CachedResponse.response_id)))
    assert cached == {r.id for r in lost[:3]}

    DBOS.trigger_schedule(reconcile_schedule_name(automation_id))  # finds nothing new
    time.sleep(1.0)
    with hub.engine.services.sessionmaker() as session:
        assert set(session.scalars(select(CachedResponse.response_id))) == cached
    # The partial response is not this automation's business (include_partial is off).
    assert Runs(hub.engine.services).query(automation_id=automation_id).total == 3


def test_not_yet_available_response_is_retried(hub: Hub) -> None:
    hub.sandbox.config.response_unavailable_reads = 2
    automation_id, _token, _ = enabled_automation(hub)

    [response] = Simulator(hub.sandbox, hub.survey_id, seed=2).run(1)
    run = hub.wait_run(f"{automation_id}:{hub.survey_id}:{response.id}")

    assert run.status == "succeeded", run.error
    # Qualtrics said "not yet available" (202) at least once; it was waited out, not failed.
    assert hub.qualtrics.statuses.get(202, 0) >= 1


@pytest.mark.slow
def test_brand_rate_limit_is_never_exceeded(hub: Hub) -> None:
    hub.sandbox.faults.set_rate_limit(3000)
    automation_id, _token, _ = enabled_automation(hub)
    Automations(hub.engine.services).update(
        automation_id,
        {**notify_automation(hub, "QID1"), "steps": [{"action": "qualtrics.get_response"}]},
    )
    # More than the client limiter's burst (150), so the budget logic is what keeps 429s away.
    responses = Simulator(hub.sandbox, hub.survey_id, seed=13).run(300)
    completed = [r for r in responses if r.finished]

    runs = [hub.wait_run(f"{automation_id}:{hub.survey_id}:{r.id}", limit=300) for r in completed]

    assert {r.status for r in runs} == {"succeeded"}
    assert hub.qualtrics.statuses.get(429, 0) == 0
    # Partial responses are not subscribed to, so they start nothing.
    total = Runs(hub.engine.services).query(automation_id=automation_id).total
    assert total == len(completed)
