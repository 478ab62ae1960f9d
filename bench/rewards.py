"""Rewards benchmark: end-to-end rewards per second with the gift-code provider, and latency
from a response completed to its reward email accepted by SMTP.

Run: .venv/bin/python bench/rewards.py [--burst 1000] [--paced-seconds 20] [--skip-postgres]

Each scenario builds the real chain: the sandbox records completed responses (the Qualtrics),
their signed webhooks are delivered to the hub's edge, the engine runs the automation
``survey_response → qualtrics.get_response → incentives.send_reward`` (a gift code claimed
atomically, the templated email sent through the outbox) and an aiosmtpd server on loopback
receives the emails and stamps each one.

* SQLite: the embedded default — one process (edge + engine + worker); the sandbox is reached
  in-process.
* PostgreSQL: the scale-out shape — this process is the web side (edge + a web-only engine
  queuing runs), **2 ``qualflow worker`` processes** execute them and fetch responses from the
  sandbox over HTTP on loopback.

Measured per scenario: *burst* — N responses completed at once: rewards/s from the first
webhook to the last email accepted; *paced* — 50 responses/s: p50/p99 of response completed
(webhook sent) → reward email accepted by SMTP. Figures depend on the machine and on what else
runs on it; the table says what was measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from rich.console import Console
from rich.table import Table

QUALFLOW = str(Path(sys.executable).with_name("qualflow"))
PUBLIC = "http://hub.bench"
CLEAN = {
    "Q_RecaptchaScore": 0.9,
    "Q_RelevantIDDuplicate": "false",
    "Q_RelevantIDDuplicateScore": 0,
    "Q_RelevantIDFraudScore": 1,
}


class StampingSmtp:
    """aiosmtpd on 127.0.0.1:<free port>: records when each recipient's message was accepted."""

    def __init__(self) -> None:
        self.accepted: dict[str, float] = {}
        self.count = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.perf_counter()
        with self._lock:
            for recipient in envelope.rcpt_tos:
                self.accepted.setdefault(recipient.lower(), now)
            self.count += 1
        return "250 Message accepted"

    def _run(self) -> None:
        from aiosmtpd.smtp import SMTP

        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            self._loop.create_server(lambda: SMTP(self), "127.0.0.1", 0, backlog=1024)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    def start(self) -> StampingSmtp:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        from qualflow.notify.email import close_pools

        close_pools()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class LoopbackServer:
    def __init__(self, app: Any) -> None:
        import uvicorn

        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:6]}.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = os.environ.get("QUALFLOW_TEST_PG_URL", "postgresql://127.0.0.1:5432/test")
    driver = "postgresql+psycopg://" + server.split("://", 1)[1]
    name = f"qf_bench_rewards_{uuid.uuid4().hex[:8]}"
    admin = create_engine(driver, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Result:
    scenario: str
    responses: int
    seconds: float
    rewards: int
    latencies: list[float]
    note: str = ""

    @property
    def rate(self) -> float:
        return self.rewards / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Chain:
    """One database with a connection, a gift-code incentive and an enabled automation."""

    def __init__(self, kind: str, url: str, workdir: Path, smtp: StampingSmtp) -> None:
        from fastapi import FastAPI

        from qualflow.sandbox import SandboxState, create_app
        from qualflow.sandbox.seed import research_screener
        from qualflow.store.migrate import migrate
        from qualflow.store.secrets import SecretBox
        from qualflow.web import edge

        self.kind, self.url, self.workdir, self.smtp = kind, url, workdir, smtp
        migrate(url)
        self.key = SecretBox.generate_key()
        self.edge_app = FastAPI()
        self.edge_app.include_router(edge.router)
        self.sandbox = SandboxState()
        _user, self.token = self.sandbox.default_user()
        self.survey = research_screener(self.sandbox)
        self.sandbox_app = create_app(self.sandbox)
        self.server: LoopbackServer | None = None
        self.workers: list[subprocess.Popen[str]] = []

    def start(self, codes: int) -> None:
        from qualflow.connections.clients import client_factory, configure_clients
        from qualflow.connections.models import Connection
        from qualflow.engine.automations import Automations
        from qualflow.engine.config import EngineConfig
        from qualflow.engine.runtime import Engine
        from qualflow.incentives.manage import IncentiveManager
        from qualflow.incentives.schemas import IncentiveSpec
        from qualflow.notify.email import SmtpSettings
        from qualflow.store.db import session_scope
        from qualflow.store.secrets import SecretBox

        scale_out = self.kind == "postgres"
        base_url = "http://sandbox.bench"
        if scale_out:
            self.server = LoopbackServer(self.sandbox_app)
            base_url = self.server.start()
        self.engine = Engine(
            EngineConfig(
                database_url=self.url, executor_id=f"bench-{self.kind}", worker=not scale_out,
                public_base_url=PUBLIC, worker_concurrency=64,
            ),
            secret_box=SecretBox([self.key]),
            extras={"smtp": SmtpSettings(host="127.0.0.1", port=self.smtp.port,
                                         sender="rewards@bench.example")},
        )  # fmt: skip
        configure_clients(transport=httpx.ASGITransport(app=self.sandbox_app))
        self.engine.services.client_factory = client_factory(self.engine.services.sessionmaker)
        self.edge_app.state.qualflow_engine = self.engine
        self.engine.start()
        factory = self.engine.services.sessionmaker
        with session_scope(factory) as session:
            connection = Connection(
                name="sandbox", base_url=base_url, auth_type="token", api_token=self.token,
                shared=True, service_user=False, requests_per_minute=600_000,
            )  # fmt: skip
            session.add(connection)
            session.flush()
            connection_id = connection.id
        manager = IncentiveManager(factory)
        pool = manager.create_pool("bench")
        lines = "".join(f"BENCH-{n:06d},10,USD,\n" for n in range(codes))
        manager.import_codes(pool.id, "code,value,currency,expiry\n" + lines)
        incentive = asyncio.run(
            manager.create(
                IncentiveSpec(
                    name="bench", provider="gift_codes", gift_code_pool_id=pool.id,
                    amount=Decimal(10), currency="USD", approval_mode="automatic",
                ),
                actor="bench",
            )
        )  # fmt: skip
        self.email_qid = next(
            qid
            for qid in self.survey.ordered_question_ids()
            if getattr(self.survey.questions[qid], "content_type", None) == "ValidEmail"
        )
        automations = Automations(self.engine.services)
        created = automations.create(
            {
                "name": "bench rewards",
                "connection_id": connection_id,
                "trigger": {"type": "survey_response", "survey_id": self.survey.id},
                "steps": [
                    {"action": "qualtrics.get_response", "key": "response"},
                    {
                        "action": "incentives.send_reward",
                        "key": "reward",
                        "config": {
                            "incentive": incentive.reference_id,
                            "email_field": self.email_qid,
                        },
                    },
                ],
            }
        )
        automations.set_enabled(created.id, True)
        assert created.endpoint is not None
        self.hook = "/hooks/qualtrics/" + created.endpoint.url.rsplit("/", 1)[1]
        [self.subscription] = self.sandbox.subscriptions.values()
        if scale_out:
            for n in (1, 2):
                self._spawn(f"bench-worker-{n}")

    def _spawn(self, executor_id: str) -> None:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "QUALFLOW_DATABASE_URL": self.url,
            "QUALFLOW_DATA_DIR": str(self.workdir / "data"),
            "QUALFLOW_SECRET_KEYS": self.key,
            "QUALFLOW_SMTP_HOST": "127.0.0.1",
            "QUALFLOW_SMTP_PORT": str(self.smtp.port),
            "QUALFLOW_SMTP_FROM": "rewards@bench.example",
            "QUALFLOW_LOG_LEVEL": "WARNING",
        }
        proc = subprocess.Popen(
            [QUALFLOW, "worker", "--executor-id", executor_id, "--concurrency", "64"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        ready = threading.Event()

        def drain() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                if "ready" in line:
                    ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(60):
            raise RuntimeError(f"worker {executor_id} did not start")
        self.workers.append(proc)

    def responses(self, count: int, tag: str) -> list[tuple[str, bytes]]:
        """Record ``count`` completed responses (no webhook yet); (email, webhook body) each."""
        from qualflow.sandbox.delivery import form_fields
        from qualflow.sandbox.respondents import Simulator

        simulator = Simulator(self.sandbox, self.survey.id, seed=random.randrange(10**6))
        made = []
        for n in range(count):
            email = f"{tag}-{n}@bench.example"
            values = simulator.generate(1)[0]
            values.update(
                {"finished": 1, "progress": 100, f"{self.email_qid}_TEXT": email, **CLEAN}
            )
            values.pop("Q_BallotBoxStuffing", None)
            response = self.sandbox.record_response(self.survey.id, values, emit=False)
            event = self.sandbox.response_event(response)
            made.append((email, urlencode(form_fields(event, self.subscription)).encode()))
        return made

    async def deliver(self, batch: list[tuple[str, bytes]], rate: float | None) -> dict[str, float]:
        """Deliver the webhooks (as fast as possible, or ``rate`` per second); send times."""
        sent: dict[str, float] = {}
        transport = httpx.ASGITransport(app=self.edge_app)
        limit = asyncio.Semaphore(64)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as client:

            async def post(email: str, body: bytes, at: float) -> None:
                delay = at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                async with limit:
                    sent[email] = time.perf_counter()
                    answer = await client.post(
                        self.hook, content=body,
                        headers={"content-type": "application/x-www-form-urlencoded"},
                    )  # fmt: skip
                    if answer.status_code != 200:
                        raise RuntimeError(f"webhook answered {answer.status_code}: {answer.text}")

            start = time.perf_counter()
            await asyncio.gather(
                *(
                    post(email, body, start + (i / rate if rate else 0))
                    for i, (email, body) in enumerate(batch)
                )
            )
        return sent

    def run(self, name: str, count: int, rate: float | None, timeout: float) -> Result:
        batch = self.responses(count, name.replace(" ", "-"))
        emails = [email for email, _ in batch]
        started = time.perf_counter()
        sent = asyncio.run(self.deliver(batch, rate))
        deadline = time.monotonic() + timeout
        while sum(1 for e in emails if e in self.smtp.accepted) < count:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        received = [e for e in emails if e in self.smtp.accepted]
        last = max((self.smtp.accepted[e] for e in received), default=started)
        latencies = [self.smtp.accepted[e] - sent[e] for e in received]
        note = (
            "" if len(received) == count else f"only {len(received)} of {count} in {timeout:.0f} s"
        )
        return Result(name, count, last - started, len(received), latencies, note)

    def stop(self) -> None:
        from qualflow.connections.clients import configure_clients

        for proc in self.workers:
            proc.terminate()
        for proc in self.workers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.engine.stop()
        configure_clients(transport=None)
        if self.server is not None:
            self.server.stop()


def scenario(kind: str, burst: int, paced_seconds: float, workdir: Path) -> list[Result]:
    smtp = StampingSmtp().start()
    try:
        with database(kind, workdir) as url:
            chain = Chain(kind, url, workdir, smtp)
            paced = int(50 * paced_seconds)
            chain.start(codes=burst + paced + 200)
            try:
                chain.run(f"{kind} warm-up", 50, None, 60)
                results = [
                    chain.run(f"{kind} burst", burst, None, 300),
                    chain.run(f"{kind} paced 50/s", paced, 50.0, 120),
                ]
            finally:
                chain.stop()
            return results
    finally:
        smtp.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.ERROR)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="qf-bench-rewards-") as tmp:
        kinds = [k for k in ("sqlite", "postgres") if not getattr(args, f"skip_{k}")]
        for kind in kinds:
            results.extend(scenario(kind, args.burst, args.paced_seconds, Path(tmp)))
    table = Table(title="Rewards: response completed → reward email accepted by SMTP (gift codes)")
    for column in (
        "scenario",
        "responses",
        "rewards",
        "seconds",
        "rewards/s",
        "p50",
        "p99",
        "note",
    ):
        table.add_column(column, justify="left" if column in ("scenario", "note") else "right")
    for r in results:
        p50, p99 = r.percentile(0.50), r.percentile(0.99)
        table.add_row(
            r.scenario, str(r.responses), str(r.rewards), f"{r.seconds:.1f}", f"{r.rate:.0f}",
            f"{p50 * 1000:.0f} ms" if p50 is not None else "—",
            f"{p99 * 1000:.0f} ms" if p99 is not None else "—", r.note,
        )  # fmt: skip
    Console().print(table)
    print("targets: >= 200 rewards/s on PostgreSQL (burst); p99 < 1 s at 50 responses/s")


if __name__ == "__main__":
    main()
