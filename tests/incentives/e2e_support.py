"""End-to-end wiring for incentive tests: the sandbox (Qualtrics + Tango) delivers webhooks to the
hub's edge, the engine runs the automation, rewards are paid and emailed to aiosmtpd.

Everything is real except the network: the sandbox app serves Qualtrics and Tango in-process
(``httpx.ASGITransport``) and sends its event-subscription webhooks straight into the edge.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from qualflow.connections.clients import client_factory, configure_clients
from qualflow.connections.models import Connection
from qualflow.engine.automations import Automations
from qualflow.engine.config import EngineConfig
from qualflow.engine.runs import RunDetail, Runs
from qualflow.engine.runtime import Engine
from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.models import Incentive, Reward, TangoAccount
from qualflow.incentives.providers import ProviderContext
from qualflow.incentives.providers.tango import clear_caches
from qualflow.incentives.runtime import IncentiveOptions, IncentivesRuntime, build_runtime
from qualflow.incentives.schemas import IncentiveSpec
from qualflow.notify.email import SmtpSettings
from qualflow.sandbox import SandboxState, create_app
from qualflow.sandbox.model import Survey
from qualflow.sandbox.respondents import Simulator
from qualflow.sandbox.seed import customer_satisfaction, research_screener
from qualflow.sandbox.tango_state import DEFAULT_ACCOUNT, DEFAULT_CUSTOMER, TangoState
from qualflow.store.db import session_scope
from qualflow.store.secrets import SecretBox
from qualflow.web import edge

PUBLIC = "http://hub.test"
EVENTS_PATH = "/inbound-event/v1/events/json/triggers"
FINAL = ("succeeded", "failed", "skipped", "cancelled")
CLEAN_FRAUD = {
    "Q_RecaptchaScore": 0.9,
    "Q_RelevantIDDuplicate": "false",
    "Q_RelevantIDDuplicateScore": 0,
    "Q_RelevantIDFraudScore": 2,
}


def email_qid(survey: Survey) -> str:
    for qid in survey.ordered_question_ids():
        question = survey.questions[qid]
        if getattr(question, "content_type", None) == "ValidEmail":
            return qid
    raise AssertionError(f"{survey.id} has no email question")


@dataclass(frozen=True)
class EventAutomation:
    id: int
    url_token: str
    api_token: str


@dataclass
class RewardHub:
    engine: Engine
    edge_app: FastAPI
    sandbox: SandboxState
    sandbox_app: FastAPI
    tango: TangoState
    connection_id: int
    screener: Survey
    anonymous_survey: Survey

    @property
    def factory(self) -> Any:
        return self.engine.services.sessionmaker

    @property
    def manager(self) -> IncentiveManager:
        return IncentiveManager(
            self.factory,
            ProviderContext(
                sessionmaker=self.factory,
                tango_transport=httpx.ASGITransport(app=self.sandbox_app),
                tango_interval=0.0,
            ),
        )

    @property
    def runtime(self) -> IncentivesRuntime:
        """The incentives runtime the web app and the CLI build (service, manager, fulfiller),
        emailing through the same SMTP sink as the engine."""
        return build_runtime(
            self.factory,
            None,
            IncentiveOptions(
                tango_transport=httpx.ASGITransport(app=self.sandbox_app),
                tango_interval=0.0,
                smtp=self.engine.services.extras["smtp"],
                run_fulfiller=False,
                alert_check_interval=0,
            ),
        )

    def incentive(self, provider: str = "gift_codes", **fields: Any) -> Incentive:
        spec: dict[str, Any] = {"name": f"{provider} study", "approval_mode": "automatic"}
        if provider == "gift_codes":
            pool = self.manager.create_pool(f"pool {time.monotonic_ns()}")
            stock = int(fields.pop("stock", 5))
            lines = "".join(f"CODE-{pool.id}-{n:04d},10,USD,\n" for n in range(stock))
            self.manager.import_codes(pool.id, "code,value,currency,expiry\n" + lines)
            spec.update(gift_code_pool_id=pool.id, amount=Decimal(10), currency="USD")
        elif provider == "tango":
            with session_scope(self.factory) as session:
                account = session.scalar(select(TangoAccount).where(TangoAccount.name == "sandbox"))
                account_id = account.id if account is not None else None
            if account_id is None:
                account_id = self.manager.create_tango_account(
                    name="sandbox", base_url="http://sandbox.test",
                    platform_name=self.tango.platform_name, platform_key=self.tango.platform_key,
                    customer_id=DEFAULT_CUSTOMER, account_id=DEFAULT_ACCOUNT,
                ).id  # fmt: skip
            spec.update(tango_account_id=account_id, utid="U561593", amount=Decimal(10))
        else:
            spec.update(amount=Decimal(10), currency="USD")
        spec.update(provider=provider, **fields)
        return asyncio.run(self.manager.create(IncentiveSpec.model_validate(spec), actor="tests"))

    def automation(
        self,
        incentive: Incentive,
        *,
        survey: Survey | None = None,
        email_source: str = "question",
        name: str | None = None,
        **step_config: Any,
    ) -> int:
        survey = survey or self.screener
        config: dict[str, Any] = {"incentive": incentive.reference_id, "email_source": email_source}
        config.update(step_config)
        if email_source == "question":
            config["email_field"] = email_qid(survey)
        automations = Automations(self.engine.services)
        created = automations.create(
            {
                "name": name or f"reward {incentive.reference_id} {time.monotonic_ns()}",
                "connection_id": self.connection_id,
                "trigger": {"type": "survey_response", "survey_id": survey.id},
                "steps": [
                    {"action": "qualtrics.get_response", "key": "response"},
                    {"action": "incentives.send_reward", "key": "reward", "config": config},
                ],
            }
        )
        automations.set_enabled(created.id, True)
        return created.id

    def event_automation(
        self, incentive: Incentive, fields: dict[str, str], config: dict[str, Any]
    ) -> EventAutomation:
        """A JSON-event automation (``fields``: name → JSONPath) whose one step rewards."""
        automations = Automations(self.engine.services)
        created = automations.create(
            {
                "name": f"event reward {incentive.reference_id} {time.monotonic_ns()}",
                "trigger": {"type": "json_event", "fields": fields},
                "steps": [
                    {
                        "action": "incentives.send_reward",
                        "key": "reward",
                        "config": {"incentive": incentive.reference_id, **config},
                    }
                ],
            }
        )
        automations.set_enabled(created.id, True)
        assert created.endpoint is not None
        assert created.api_token is not None
        return EventAutomation(
            created.id, created.endpoint.url.split("urlTokenId=")[1], created.api_token
        )

    def post_event(self, automation: EventAutomation, document: dict[str, Any]) -> str:
        """POST one JSON event to the hub's edge; returns the run id it starts."""
        response = TestClient(self.edge_app).post(
            EVENTS_PATH,
            params={"urlTokenId": automation.url_token},
            json=document,
            headers={"X-API-TOKEN": automation.api_token},
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "accepted"
        return f"{automation.id}:event:{response.json()['eventId']}"

    def respond(self, survey: Survey | None = None, **values: Any) -> str:
        """Record one completed response (webhooks fire); ``values`` override the simulated."""
        survey = survey or self.screener
        generated = Simulator(self.sandbox, survey.id, seed=time.monotonic_ns()).generate(1)[0]
        generated.update({"finished": 1, "progress": 100, **CLEAN_FRAUD})
        generated.pop("Q_BallotBoxStuffing", None)
        generated.update(values)
        return self.sandbox.record_response(survey.id, generated).id

    def wait_run(self, automation_id: int, survey: Survey, response_id: str) -> RunDetail:
        return self.wait_run_id(f"{automation_id}:{survey.id}:{response_id}")

    def wait_run_id(self, run_id: str) -> RunDetail:
        runs = Runs(self.engine.services)
        deadline = time.monotonic() + 120
        while True:
            try:
                detail: RunDetail | None = runs.get(run_id)
            except Exception:
                detail = None
            if detail is not None and detail.status in FINAL:
                return detail
            assert time.monotonic() < deadline, f"run {run_id} not finished: {detail}"
            time.sleep(0.05)

    def reward(self, reference: str) -> Reward:
        with self.factory() as session:
            found = session.scalar(select(Reward).where(Reward.reference_id == reference))
            assert found is not None
            return found


@contextmanager
def reward_hub(database_url: str, smtp_port: int) -> Iterator[RewardHub]:
    clear_caches()
    edge_app = FastAPI()
    edge.install(edge_app)
    sandbox = SandboxState()
    _user, token = sandbox.default_user()
    screener = research_screener(sandbox)
    anonymous = customer_satisfaction(sandbox)
    sandbox_app = create_app(sandbox, webhook_transport=httpx.ASGITransport(app=edge_app))
    tango = TangoState.seeded()
    sandbox_app.state.tango = tango
    engine = Engine(
        EngineConfig(
            database_url=database_url,
            executor_id="incentives-e2e",
            public_base_url=PUBLIC,
            retry_initial_delay=0.05,
            retry_max_delay=0.5,
            step_max_attempts=10,
        ),
        secret_box=SecretBox([SecretBox.generate_key()]),
        extras={
            "smtp": SmtpSettings(host="127.0.0.1", port=smtp_port, sender="rewards@example.org"),
            "tango_transport": httpx.ASGITransport(app=sandbox_app),
            "tango_interval": 0.0,
        },
    )
    configure_clients(transport=httpx.ASGITransport(app=sandbox_app))
    engine.services.client_factory = client_factory(engine.services.sessionmaker)
    with session_scope(engine.services.sessionmaker) as session:
        connection = Connection(
            name="sandbox", base_url="http://sandbox.test", auth_type="token", api_token=token,
            shared=True, service_user=False, requests_per_minute=3000,
        )  # fmt: skip
        session.add(connection)
        session.flush()
        connection_id = connection.id
    edge_app.state.qualflow_engine = engine
    engine.start()
    try:
        yield RewardHub(
            engine, edge_app, sandbox, sandbox_app, tango, connection_id, screener, anonymous
        )
    finally:
        engine.stop()
        configure_clients(transport=None)
