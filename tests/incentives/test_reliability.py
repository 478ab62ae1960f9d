"""Reliability: 1,000 responses (shared emails, bots), every webhook delivered 3 times, a worker
process killed (SIGKILL) twice at random → exactly one reward per eligible email, no gift code
used twice, nothing lost (every response is a run with a final state).

Scale-out shape: this process is the web side (edge + a web-only engine that queues runs); two
``qualflow worker`` processes execute the runs, fetching responses from the sandbox over HTTP.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import func, select

from qualflow.connections.clients import client_factory, configure_clients
from qualflow.connections.models import Connection
from qualflow.engine.automations import Automations
from qualflow.engine.config import EngineConfig
from qualflow.engine.models import Run
from qualflow.engine.runtime import Engine
from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.models import GiftCode, Reward
from qualflow.incentives.schemas import IncentiveSpec
from qualflow.sandbox import SandboxState, create_app
from qualflow.sandbox.delivery import form_fields
from qualflow.sandbox.respondents import Simulator
from qualflow.sandbox.seed import research_screener
from qualflow.store.db import session_scope
from qualflow.store.secrets import SecretBox
from tests.engine.engine_support import SmtpSink
from tests.incentives.e2e_support import CLEAN_FRAUD, PUBLIC, email_qid
from tests.incentives.support import body_text

# The default per-test timeout (300 s) is for hangs; this test does minutes of real work on a
# loaded 2-core CI machine, so it gets a wider safety net (its own waits have deadlines too).
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]

QUALFLOW = str(Path(sys.executable).with_name("qualflow"))
RESPONSES = 1000
DELIVERIES = 3


class LoopbackServer:
    """uvicorn on 127.0.0.1:<port chosen by the OS> in a thread (the workers' Qualtrics)."""

    def __init__(self, app: FastAPI) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the sandbox server did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Workers:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.logs: dict[str, list[str]] = defaultdict(list)
        self.killed: list[subprocess.Popen[str]] = []

    def spawn(self, executor_id: str) -> None:
        proc = subprocess.Popen(
            [QUALFLOW, "worker", "--executor-id", executor_id, "--concurrency", "32"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=self.env,
        )  # fmt: skip
        ready = threading.Event()

        def drain() -> None:
            # Keep reading: a full stderr pipe would block the worker.
            assert proc.stderr is not None
            for line in proc.stderr:
                self.logs[executor_id].append(line)
                if f"worker {executor_id} ready" in line:
                    ready.set()

        threading.Thread(target=drain, daemon=True).start()
        assert ready.wait(180), f"worker {executor_id} did not start: {self.logs[executor_id]}"
        self.procs[executor_id] = proc

    def kill(self, executor_id: str) -> None:
        proc = self.procs[executor_id]
        proc.send_signal(signal.SIGKILL)
        proc.wait(20)
        self.killed.append(proc)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for proc in self.killed + list(self.procs.values()):
            if proc.stderr is not None:
                proc.stderr.close()


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    # Several worker processes on one database is the PostgreSQL deployment.
    from qualflow.engine.testing import reset_schema

    url = str(request.getfixturevalue("incentives_pg_database"))
    reset_schema(url)
    return url


def finished_runs(factory: object) -> tuple[int, int]:
    """Runs whose workflow finished (by DBOS's record, which the run row should mirror)."""
    from sqlalchemy import text

    with factory() as session:  # type: ignore[operator]
        total = session.scalar(select(func.count()).select_from(Run)) or 0
        finished = session.scalar(
            text(
                "SELECT count(*) FROM runs r LEFT JOIN dbos.workflow_status w "
                "ON w.workflow_uuid = r.workflow_id WHERE r.status IN "
                "('succeeded', 'failed', 'skipped', 'cancelled') OR w.status IN "
                "('SUCCESS', 'ERROR', 'CANCELLED')"
            )
        )
        return int(finished or 0), int(total)


def stuck(factory: object) -> list[object]:
    from qualflow.engine.models import RunStep

    with factory() as session:  # type: ignore[operator]
        runs = session.scalars(
            select(Run).where(Run.status.not_in(("succeeded", "failed", "skipped", "cancelled")))
        ).all()
        from sqlalchemy import text

        dbos = session.execute(
            text(
                "SELECT workflow_uuid, status, executor_id, queue_name, recovery_attempts "
                "FROM dbos.workflow_status WHERE workflow_uuid = ANY(:ids)"
            ),
            {"ids": [run.workflow_id for run in runs]},
        ).all()
        events = session.execute(
            text(
                "SELECT dedupe_key, status, run_id, reason FROM inbound_events "
                "WHERE automation_id IS NOT NULL AND status <> 'dispatched' LIMIT 20"
            )
        ).all()
        return [("dbos", dbos), ("undispatched events", events), *[
            (run.id, run.status, run.attempt, [
                (s.key, s.status, s.attempts, s.error)
                for s in session.scalars(select(RunStep).where(RunStep.run_id == run.id))
            ])
            for run in runs
        ]]  # fmt: skip


def population(rng: random.Random) -> list[tuple[str, bool]]:
    """(email, bot) per response: ~650 people, some answering 2–3 times, ~8% bots."""
    people = [f"person{n}@example.org" for n in range(650)]
    rows: list[tuple[str, bool]] = []
    while len(rows) < RESPONSES:
        if rng.random() < 0.08:
            rows.append((f"bot{len(rows)}@bots.example.net", True))
        else:
            rows.append((rng.choice(people), False))
    return rows


def test_a_thousand_responses_three_deliveries_two_worker_kills(
    database_url: str, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    rng = random.Random(20240917)
    key = SecretBox.generate_key()
    edge_app = FastAPI()
    from qualflow.web import edge

    edge.install(edge_app)
    sandbox = SandboxState()
    _user, token = sandbox.default_user()
    survey = research_screener(sandbox)
    sandbox_app = create_app(sandbox)
    server = LoopbackServer(sandbox_app)
    sandbox_url = server.start()
    web = Engine(
        EngineConfig(database_url=database_url, executor_id="web", worker=False,
                     public_base_url=PUBLIC),
        secret_box=SecretBox([key]),
    )  # fmt: skip
    configure_clients(transport=httpx.ASGITransport(app=sandbox_app))
    web.services.client_factory = client_factory(web.services.sessionmaker)
    edge_app.state.qualflow_engine = web
    workers = Workers(
        {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "QUALFLOW_DATABASE_URL": database_url,
            "QUALFLOW_DATA_DIR": str(tmp_path / "data"),
            "QUALFLOW_SECRET_KEYS": key,
            "QUALFLOW_SMTP_HOST": "127.0.0.1",
            "QUALFLOW_SMTP_PORT": str(smtp_sink.port),
            "QUALFLOW_SMTP_FROM": "rewards@example.org",
            "QUALFLOW_LOG_LEVEL": "WARNING",
        }
    )
    web.start()
    try:
        factory = web.services.sessionmaker
        with session_scope(factory) as session:
            connection = Connection(
                name="sandbox", base_url=sandbox_url, auth_type="token", api_token=token,
                shared=True, service_user=False, requests_per_minute=30000,
            )  # fmt: skip
            session.add(connection)
            session.flush()
            connection_id = connection.id
        manager = IncentiveManager(factory)
        pool = manager.create_pool("reliability")
        codes = "".join(f"REL-{n:05d}-CODE,10,USD,\n" for n in range(900))
        assert manager.import_codes(pool.id, "code,value,currency,expiry\n" + codes).imported == 900
        incentive = asyncio.run(
            manager.create(
                IncentiveSpec(
                    name="Reliability", provider="gift_codes", gift_code_pool_id=pool.id,
                    amount=Decimal(10), currency="USD", approval_mode="automatic",
                ),
                actor="tests",
            )
        )  # fmt: skip
        automations = Automations(web.services)
        created = automations.create(
            {
                "name": "reward respondents",
                "connection_id": connection_id,
                "trigger": {"type": "survey_response", "survey_id": survey.id},
                "steps": [
                    {"action": "qualtrics.get_response", "key": "response"},
                    {
                        "action": "incentives.send_reward",
                        "key": "reward",
                        "config": {
                            "incentive": incentive.reference_id,
                            "email_field": email_qid(survey),
                        },
                    },
                ],
            }
        )
        automations.set_enabled(created.id, True)
        webhook_token = created.endpoint.url.rsplit("/", 1)[1]  # type: ignore[union-attr]
        [subscription] = sandbox.subscriptions.values()

        workers.spawn("worker-1")
        workers.spawn("worker-2")

        people = population(rng)
        simulator = Simulator(sandbox, survey.id, seed=7)
        qid = email_qid(survey)
        responses: list[tuple[str, str, bool]] = []
        for email, bot in people:
            values = simulator.generate(1)[0]
            values.update({"finished": 1, "progress": 100, f"{qid}_TEXT": email, **CLEAN_FRAUD})
            values.pop("Q_BallotBoxStuffing", None)
            if bot:
                values.update(Q_RecaptchaScore=0.1, Q_RelevantIDFraudScore=88)
            response = sandbox.record_response(survey.id, values, emit=False)
            responses.append((response.id, email, bot))

        # Two kills at random moments while the deliveries and runs are in flight.
        def chaos() -> None:
            for executor in ("worker-1", "worker-2"):
                time.sleep(rng.uniform(3.0, 8.0))
                workers.kill(executor)
                workers.spawn(executor)  # the same id: it recovers its own runs

        killer = threading.Thread(target=chaos)
        killer.start()

        async def deliver() -> None:
            transport = httpx.ASGITransport(app=edge_app)
            limit = asyncio.Semaphore(50)
            async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as client:

                async def post(body: bytes) -> None:
                    async with limit:
                        answer = await client.post(
                            f"/hooks/qualtrics/{webhook_token}", content=body,
                            headers={"content-type": "application/x-www-form-urlencoded"},
                        )  # fmt: skip
                        assert answer.status_code == 200, answer.text

                bodies = [
                    urlencode(
                        form_fields(
                            sandbox.response_event(sandbox.get_response(survey.id, rid)),
                            subscription,
                        )
                    ).encode()
                    for rid, _email, _bot in responses
                ]
                copies = [body for body in bodies for _ in range(DELIVERIES)]
                rng.shuffle(copies)
                await asyncio.gather(*(post(body) for body in copies))

        started = time.monotonic()
        asyncio.run(deliver())
        print(f"delivered {DELIVERIES * RESPONSES} webhooks in {time.monotonic() - started:.1f} s")
        killer.join()

        # Generous: on a loaded 2-core machine draining 1,000 runs can take minutes.
        deadline = time.monotonic() + 600
        while True:
            finished, total = finished_runs(factory)
            if total == RESPONSES and finished == RESPONSES:
                print(f"all runs finished after {time.monotonic() - started:.1f} s")
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{RESPONSES - finished} runs unfinished: {stuck(factory)}\n"
                                     + "".join(line for log in workers.logs.values()
                                               for line in log[-30:]))  # fmt: skip
            time.sleep(0.5)
        with factory() as session:
            runs = session.scalars(select(Run)).all()
            rewards = session.scalars(select(Reward)).all()
            claimed = session.scalars(select(GiftCode).where(GiftCode.reward_id.is_not(None))).all()
            stale = stuck(factory)
    finally:
        workers.stop_all()
        web.stop()
        configure_clients(transport=None)
        server.stop()

    # Nothing lost: one run per response (3 deliveries each), none failed.
    assert len(runs) == RESPONSES
    clean = {email for _rid, email, bot in responses if not bot}
    bots = {email for _rid, email, bot in responses if bot}
    # Exactly one reward per eligible email, paid; bots held for review.
    sent = [r for r in rewards if r.status == "sent"]
    assert sorted(r.email_normalized for r in sent) == sorted(clean)
    held = [r for r in rewards if r.status == "held"]
    assert {r.email_normalized for r in held} == bots
    assert len(rewards) == len(clean) + len(bots)
    # No gift code used twice; each sent reward has exactly one.
    assert len({c.reward_id for c in claimed}) == len(claimed) == len(sent)
    # Every paid respondent got their own code by email (a crash between the SMTP answer and
    # recording it may send the same message twice — same code, same Message-ID).
    code_of = {c.reward_id: c.code for c in claimed}
    by_email = {r.email_normalized: code_of[r.id] for r in sent}
    received: dict[str, set[str]] = defaultdict(set)
    for message in smtp_sink.messages:
        [recipient] = message["to"]
        found = re.findall(r"REL-\d{5}-CODE", body_text(message))
        received[recipient.lower()].update(found)
    assert set(received) == clean
    assert all(received[email] == {by_email[email]} for email in clean)
    # Every run's history row is final too, also for runs recovered after their last step.
    outcomes = Counter((run.status, (run.error or "")[:200]) for run in runs)
    assert outcomes == {("succeeded", ""): RESPONSES}, stale
