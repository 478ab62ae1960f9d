"""Rewards benchmark: end-to-end rewards per second with the gift-code provider, and latency
from a response completed to its reward email accepted by SMTP.

Run: .venv/bin/python bench/rewards.py [--burst 1000] [--paced-seconds 20] [--rate 50] [--repeat 3]
     [--skip-postgres | --skip-sqlite]

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
webhook to the last email accepted (its note says when the first email arrived and the rate
between the 10th and 90th percentile emails: how long the pipeline took to fill, and how fast
it ran once full, and on PostgreSQL the CPU per reward of this process, the workers and
PostgreSQL); *paced* — 50 responses/s (``--rate``): p50/p99 of
response completed (webhook sent) → reward email accepted by SMTP. Before stopping, every run
must have reached a final state (nothing lost). Figures depend on the machine and on what
else runs on it; the table says what was measured.

A last row per database, *incentives only*, calls the reward service directly (submit + pay +
email, 64 at a time, same SMTP sink) without the webhook edge and the engine: the share of the
end-to-end cost that is the incentive's own, with the CPU it used per reward.

Run ``--repeat 3`` to measure each configuration three times (best and median are printed).
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
from collections.abc import Callable, Iterator
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
    cpu_ms: float | None = None
    #: With --timeline, for a burst: each stage's times (s after the first webhook), sorted.
    timeline: list[tuple[str, list[float]]] | None = None

    @property
    def rate(self) -> float:
        return self.rewards / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def gift_code_incentive(factory: Any, prefix: str, codes: int) -> Any:
    """An automatic 10 USD gift-code incentive over a fresh pool of ``codes`` codes."""
    from qualflow.incentives.manage import IncentiveManager
    from qualflow.incentives.schemas import IncentiveSpec

    manager = IncentiveManager(factory)
    pool = manager.create_pool("bench")
    lines = "".join(f"{prefix}-{n:06d},10,USD,\n" for n in range(codes))
    manager.import_codes(pool.id, "code,value,currency,expiry\n" + lines)
    return asyncio.run(
        manager.create(
            IncentiveSpec(
                name="bench", provider="gift_codes", gift_code_pool_id=pool.id,
                amount=Decimal(10), currency="USD", approval_mode="automatic",
            ),
            actor="bench",
        )
    )  # fmt: skip


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
        edge.install(self.edge_app)
        self.sandbox = SandboxState()
        _user, self.token = self.sandbox.default_user()
        self.survey = research_screener(self.sandbox)
        self.sandbox_app = create_app(self.sandbox)
        self.server: LoopbackServer | None = None
        self.workers: list[subprocess.Popen[str]] = []
        self.engine: Any = None

    def start(self, codes: int) -> None:
        from qualflow.connections.clients import client_factory, configure_clients
        from qualflow.connections.models import Connection
        from qualflow.engine.automations import Automations
        from qualflow.engine.config import EngineConfig
        from qualflow.engine.runtime import Engine
        from qualflow.gc_tuning import tune_for_long_running_process
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
        incentive = gift_code_incentive(factory, "BENCH", codes)
        email_qid = self.survey.email_question_id()
        assert email_qid is not None, "the research screener asks for an email"
        self.email_qid = email_qid
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
        # This process's edge and engine stand in for `qualflow serve`, which does the same.
        tune_for_long_running_process()

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
            [QUALFLOW, "worker", "--executor-id", executor_id],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        self.workers.append(proc)  # stopped with the chain, even if it never gets ready
        ready = threading.Event()

        def drain() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                if "ready" in line:
                    ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(180):
            raise RuntimeError(f"worker {executor_id} did not start")

    def respondents(self, count: int, tag: str) -> list[tuple[str, Callable[[], bytes]]]:
        """``count`` respondents: each one's email, and a function that records their completed
        response in the sandbox and returns its webhook body."""
        from qualflow.sandbox.delivery import form_fields
        from qualflow.sandbox.respondents import Simulator

        simulator = Simulator(self.sandbox, self.survey.id, seed=random.randrange(10**6))
        made: list[tuple[str, Callable[[], bytes]]] = []
        for n in range(count):
            email = f"{tag}-{n}@bench.example"
            values = simulator.generate(1)[0]
            values.update(
                {"finished": 1, "progress": 100, f"{self.email_qid}_TEXT": email, **CLEAN}
            )
            values.pop("Q_BallotBoxStuffing", None)

            def complete(values: dict[str, Any] = values) -> bytes:
                response = self.sandbox.record_response(self.survey.id, values, emit=False)
                event = self.sandbox.response_event(response)
                return urlencode(form_fields(event, self.subscription)).encode()

            made.append((email, complete))
        return made

    async def deliver(
        self, batch: list[tuple[str, bytes | Callable[[], bytes]]], rate: float | None
    ) -> dict[str, float]:
        """Deliver the webhooks (as fast as possible, or ``rate`` per second); send times. A
        body still to make is a response completed only now, as its webhook leaves."""
        sent: dict[str, float] = {}
        transport = httpx.ASGITransport(app=self.edge_app)
        limit = asyncio.Semaphore(64)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as client:

            async def post(email: str, body: bytes | Callable[[], bytes], at: float) -> None:
                delay = at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                async with limit:
                    sent[email] = time.perf_counter()
                    if callable(body):
                        body = body()
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

    def run(
        self, name: str, count: int, rate: float | None, timeout: float, timeline: bool = False
    ) -> Result:
        respondents = self.respondents(count, name.replace(" ", "-"))
        emails = [email for email, _ in respondents]
        # A burst's responses are all completed before their webhooks leave; paced ones are
        # completed one by one as their webhooks go (recorded early, the engine's reconciliation
        # would find them before their webhooks and start their runs ahead of them).
        batch: list[tuple[str, bytes | Callable[[], bytes]]] = (
            [(email, complete()) for email, complete in respondents]
            if rate is None
            else list(respondents)
        )
        cpu_before = self.cpu()
        wall_start = time.time()
        started = time.perf_counter()
        sent = asyncio.run(self.deliver(batch, rate))
        deadline = time.monotonic() + timeout
        while sum(1 for e in emails if e in self.smtp.accepted) < count:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        cpu_after = self.cpu()
        received = [e for e in emails if e in self.smtp.accepted]
        last = max((self.smtp.accepted[e] for e in received), default=started)
        latencies = [self.smtp.accepted[e] - sent[e] for e in received]
        note = (
            "" if len(received) == count else f"only {len(received)} of {count} in {timeout:.0f} s"
        )
        if rate is None and len(received) >= 20:
            note = "; ".join(filter(None, [note, _fill_and_flow(started, received, self.smtp)]))
        spent = {
            group: sum(cpu - cpu_before.get(group, {}).get(pid, 0.0) for pid, cpu in pids.items())
            for group, pids in cpu_after.items()
        }
        per_reward = sum(spent.values()) * 1000 / max(len(received), 1)
        if per_reward and self.kind == "postgres":
            split = ", ".join(
                f"{k} {v * 1000 / max(len(received), 1):.1f}" for k, v in spent.items()
            )
            note = "; ".join(filter(None, [note, f"CPU ms/reward: {split}"]))
        return Result(
            name, count, last - started, len(received), latencies, note,
            cpu_ms=per_reward or None,
            timeline=self.stage_times(wall_start) if timeline and rate is None else None,
        )  # fmt: skip

    def stage_times(self, since: float) -> list[tuple[str, list[float]]]:
        """When each stage of the runs started after ``since`` (epoch s) happened, read from
        the rows the hub wrote, as seconds after ``since``."""
        from sqlalchemy import create_engine, select

        from qualflow.engine.models import InboundEvent, Run, RunStep
        from qualflow.incentives.models import Reward
        from qualflow.store.db import normalize_url

        stages = [
            ("webhook recorded", select(InboundEvent.received_at)),
            # Set as the dispatcher's transaction begins; its runs are queued at its commit.
            ("run created", select(Run.created_at)),
            ("run started", select(Run.started_at)),
            ("response fetched", select(RunStep.finished_at).where(RunStep.position == 0)),
            ("reward decided", select(Reward.created_at)),
            ("email sent", select(Reward.sent_at)),
            ("run finished", select(Run.finished_at)),
        ]
        db = create_engine(normalize_url(self.url))
        try:
            with db.connect() as connection:
                found = [
                    (stage, sorted(
                        at.timestamp() - since
                        for at in connection.scalars(query) if at is not None
                        and at.timestamp() >= since
                    ))
                    for stage, query in stages
                ]  # fmt: skip
        finally:
            db.dispose()
        return found

    def cpu(self) -> dict[str, dict[int, float]]:
        """CPU seconds used so far, per process, by this process (the web side, the sandbox
        and the SMTP sink), the workers and PostgreSQL's processes (Linux; zeros elsewhere)."""
        groups = {"this process": [os.getpid()], "workers": [w.pid for w in self.workers]}
        if self.kind == "postgres":
            groups["PostgreSQL"] = _processes_named("postgres")
        return {name: {pid: _cpu_seconds(pid) for pid in pids} for name, pids in groups.items()}

    def settle(self, expected: int, timeout: float = 120) -> str:
        """Wait until every run has a final state; a note when some did not."""
        from sqlalchemy import func, select

        from qualflow.engine.models import Run

        factory = self.engine.services.sessionmaker
        deadline = time.monotonic() + timeout
        while True:
            with factory() as session:
                rows = dict(
                    session.execute(select(Run.status, func.count()).group_by(Run.status)).all()
                )
            finished = sum(n for status, n in rows.items() if status not in ("queued", "running"))
            if finished >= expected and sum(rows.values()) == finished:
                bad = {k: v for k, v in rows.items() if k != "succeeded"}
                return f"runs not succeeded: {bad}" if bad else ""
            if time.monotonic() > deadline:
                return f"runs unfinished after {timeout:.0f} s: {rows}"
            time.sleep(0.2)

    def stop(self) -> None:
        from qualflow.connections.clients import configure_clients

        for proc in self.workers:
            proc.terminate()
        for proc in self.workers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.engine is not None:
            self.engine.stop()
        configure_clients(transport=None)
        if self.server is not None:
            self.server.stop()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, from /proc (0 when unreadable)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _processes_named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _fill_and_flow(started: float, received: list[str], smtp: StampingSmtp) -> str:
    """Where a burst's time goes: how long the pipeline took to fill (the first email) and the
    rate once it flowed (between the 10th and the 90th percentile email). A diagnostic: the
    burst's rewards/s, from first webhook to last email, is the measured figure."""
    done = sorted(smtp.accepted[e] - started for e in received)
    low, high = done[len(done) // 10], done[len(done) * 9 // 10]
    flowing = (len(done) * 8 // 10) / (high - low) if high > low else 0.0
    return f"first email at {done[0]:.2f} s; 10th-90th pct emails at {flowing:.0f}/s"


def scenario(
    kind: str,
    burst: int,
    paced_seconds: float,
    workdir: Path,
    rate: float = 50.0,
    timeline: bool = False,
) -> list[Result]:
    smtp = StampingSmtp().start()
    try:
        with database(kind, workdir) as url:
            chain = Chain(kind, url, workdir, smtp)
            paced = int(rate * paced_seconds)
            try:
                chain.start(codes=burst + paced + 200)
                chain.run(f"{kind} warm-up", 50, None, 60)
                results = [
                    chain.run(f"{kind} burst", burst, None, 300, timeline),
                    chain.run(f"{kind} paced {rate:g}/s", paced, rate, 120),
                ]
                problem = chain.settle(50 + burst + paced)
                if problem:
                    for result in results:
                        result.note = "; ".join(filter(None, [result.note, problem]))
            finally:
                chain.stop()
        with database(kind, workdir) as url:
            results.append(incentives_only(kind, url, burst, smtp))
        return results
    finally:
        smtp.stop()


class StatementCounter:
    """Statements and commits PostgreSQL ran in this engine's database from now on, from
    pg_stat_statements when the server has it (else nothing is counted). A difference of two
    snapshots: a reset would clear everyone's figures."""

    _QUERY = (
        "SELECT queryid, query, calls FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import text

        self.engine = engine
        self.before: dict[int, int] | None = None
        try:
            # The bench's own throw-away database: its view of the server's statistics.
            with engine.connect() as connection:
                connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
                connection.commit()
            self.before = {queryid: calls for queryid, _query, calls in self._rows()}
        except Exception:  # no pg_stat_statements here: the figures are simply not shown
            self.before = None

    def _rows(self) -> list[Any]:
        from sqlalchemy import text

        with self.engine.connect() as connection:
            return list(connection.execute(text(self._QUERY)).all())

    def per_reward(self, rewards: int) -> str | None:
        if self.before is None or not rewards:
            return None
        total = commits = 0
        for queryid, query, calls in self._rows():
            if "pg_stat_statements" in query:
                continue
            ran = calls - self.before.get(queryid, 0)
            total += ran
            commits += ran if query.strip().upper() == "COMMIT" else 0
        return (
            f"per reward: {total / rewards:.1f} statements incl. BEGIN/COMMIT,"
            f" {commits / rewards:.1f} commits"
        )


def incentives_only(kind: str, url: str, count: int, smtp: StampingSmtp) -> Result:
    """The reward service alone: submit + pay + email, ``count`` rewards 64 at a time."""
    import resource

    from qualflow.incentives.service import RewardRequestIn, RewardService, in_db_thread
    from qualflow.notify.email import SmtpSettings
    from qualflow.store.db import make_engine, make_sessionmaker
    from qualflow.store.migrate import migrate
    from qualflow.store.secrets import SecretBox, attach_secret_box

    migrate(url)
    db = make_engine(url) if kind == "sqlite" else make_engine(url, pool_size=32, max_overflow=8)
    attach_secret_box(db, SecretBox([SecretBox.generate_key()]))
    factory = make_sessionmaker(db)
    try:
        incentive = gift_code_incentive(factory, "ONLY", count + 50)
        service = RewardService(
            factory,
            smtp=SmtpSettings(host="127.0.0.1", port=smtp.port, sender="rewards@bench.example"),
        )
        tag = f"only-{kind}-{uuid.uuid4().hex[:6]}"

        async def one(n: int, limit: asyncio.Semaphore, sent: dict[str, float]) -> None:
            email = f"{tag}-{n}@bench.example"
            request = RewardRequestIn(
                incentive_reference=incentive.reference_id, email=email, first_name="Ana",
                source="automation", requested_by="bench", request_key=f"{tag}:{n}",
                response_id=f"R_{tag}_{n}", survey_id="SV_bench", participant_id=f"P{n}",
                ip_address=f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",
                response_values=dict(CLEAN),
            )  # fmt: skip
            async with limit:
                sent[email] = time.perf_counter()
                await in_db_thread(service.fraud_rules, incentive.reference_id)
                submission = await in_db_thread(service.submit, request, lease_owner=tag)
                assert submission.reward is not None
                await service.fulfil(submission.reward.id, owner=tag, submitted=submission)

        async def burst(first: int, size: int) -> dict[str, float]:
            limit = asyncio.Semaphore(64)
            sent: dict[str, float] = {}
            await asyncio.gather(*(one(n, limit, sent) for n in range(first, first + size)))
            return sent

        asyncio.run(burst(0, 50))  # warm-up
        statements = StatementCounter(db) if kind == "postgres" else None
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        sent = asyncio.run(burst(50, count))
        after = resource.getrusage(resource.RUSAGE_SELF)
        received = [e for e in sent if e in smtp.accepted]
        last = max((smtp.accepted[e] for e in received), default=started)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        note = "no edge/engine; 64 at a time; CPU incl. the SMTP sink"
        per_reward = statements.per_reward(count) if statements is not None else None
        return Result(
            f"{kind} incentives only", count, last - started, len(received),
            [smtp.accepted[e] - sent[e] for e in received],
            note=f"{note}; {per_reward}" if per_reward else note,
            cpu_ms=cpu * 1000 / max(len(received), 1),
        )  # fmt: skip
    finally:
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="measure each configuration N times")
    parser.add_argument("--rate", type=float, default=50.0, help="responses/s of the paced run")
    parser.add_argument(
        "--timeline", action="store_true",
        help="after each burst, when its runs reached each stage (from the hub's own rows)",
    )  # fmt: skip
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.ERROR)
    # DBOS logs a warning per workflow still being checkpointed when a process stops.
    logging.getLogger("dbos").setLevel(logging.ERROR)
    rounds: list[list[Result]] = []
    console = Console(width=160)
    repeat = max(1, args.repeat)
    with tempfile.TemporaryDirectory(prefix="qf-bench-rewards-") as tmp:
        kinds = [k for k in ("sqlite", "postgres") if not getattr(args, f"skip_{k}")]
        for number in range(1, repeat + 1):
            results: list[Result] = []
            for kind in kinds:
                results.extend(
                    scenario(
                        kind, args.burst, args.paced_seconds, Path(tmp), args.rate, args.timeline
                    )
                )
            rounds.append(results)
            console.print(_table(f"round {number} of {repeat}", results))
            for result in results:
                if result.timeline:
                    console.print(_timeline_table(result))
    if len(rounds) > 1:
        console.print(_summary(rounds))
    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} (1/5/15 min) at the end; PostgreSQL with 2 worker processes."
    )
    print("targets: >= 200 rewards/s on PostgreSQL (burst); p99 < 1 s at 50 responses/s")


def _ms(value: float | None) -> str:
    return f"{value * 1000:.0f} ms" if value is not None else "—"


def _table(title: str, results: list[Result]) -> Table:
    table = Table(
        title=f"Rewards: response completed → reward email accepted by SMTP (gift codes), {title}"
    )
    for column in (
        "scenario", "responses", "rewards", "seconds", "rewards/s", "p50", "p99", "CPU/reward",
        "note",
    ):  # fmt: skip
        table.add_column(column, justify="left" if column in ("scenario", "note") else "right")
    for r in results:
        table.add_row(
            r.scenario, str(r.responses), str(r.rewards), f"{r.seconds:.1f}", f"{r.rate:.0f}",
            _ms(r.percentile(0.50)), _ms(r.percentile(0.99)),
            f"{r.cpu_ms:.1f} ms" if r.cpu_ms is not None else "—", r.note,
        )  # fmt: skip
    return table


def _timeline_table(result: Result) -> Table:
    """Seconds after the burst's first webhook at which its runs reached each stage."""
    table = Table(
        title=f"{result.scenario}: when its runs reached each stage (s after the first webhook)"
    )
    quantiles = (("first", 0.0), ("10%", 0.1), ("50%", 0.5), ("90%", 0.9), ("last", 1.0))
    table.add_column("stage")
    for label, _q in quantiles:
        table.add_column(label, justify="right")
    table.add_column("rows", justify="right")
    for stage, times in result.timeline or []:
        cells = [
            f"{times[min(len(times) - 1, int(q * len(times)))]:.2f}" if times else "—"
            for _label, q in quantiles
        ]
        table.add_row(stage, *cells, str(len(times)))
    return table


def _summary(rounds: list[list[Result]]) -> Table:
    """Best and median over the rounds, per scenario."""
    import statistics

    table = Table(title=f"Best and median of {len(rounds)} rounds")
    for column in ("scenario", "rewards/s best", "rewards/s median", "p99 best", "p99 median"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for position, first in enumerate(rounds[0]):
        same = [results[position] for results in rounds]
        rates = [r.rate for r in same]
        p99s = [p for p in (r.percentile(0.99) for r in same) if p is not None]
        table.add_row(
            first.scenario, f"{max(rates):.0f}", f"{statistics.median(rates):.0f}",
            _ms(min(p99s) if p99s else None), _ms(statistics.median(p99s) if p99s else None),
        )  # fmt: skip
    return table


if __name__ == "__main__":
    main()
