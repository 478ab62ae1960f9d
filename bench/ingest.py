"""Ingest benchmark: webhooks at the HTTP edge, and end-to-end runs behind it.

Run: .venv/bin/python bench/ingest.py [--responses 2000] [--repeat 3] [--skip-postgres]

Every scenario uses real processes on loopback ports chosen by the OS:

* a **sandbox** process (the Qualtrics): a seeded survey with N recorded responses;
* a **hub** process: the webhook edge (uvicorn) with the engine, an automation
  ``survey_response → qualtrics.get_response → notify.email`` enabled on the sandbox;
* for PostgreSQL, the hub is web-only and **2 worker** processes execute the runs;
* this process: the load generator (signed deliveries exactly as Qualtrics sends them, over
  keep-alive connections) and a real SMTP server (aiosmtpd) receiving the emails.

Measured: deliveries accepted per second and latency at the edge (client side), end-to-end
runs per second (first delivery → last run succeeded, every email received), HTTP 429s the
hub's Qualtrics client received, and CPU milliseconds per run of the hub (+ workers) processes.
Numbers depend on the machine (and on what else runs on it); the table says what was measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
from rich.console import Console
from rich.table import Table

# -- roles run as subprocesses -----------------------------------------------------------------


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    return sock


def _serve(app: Any, sock: socket.socket) -> None:
    import uvicorn

    from qualflow.gc_tuning import tune_for_long_running_process

    # The roles stand in for `qualflow serve` and `qualflow worker`, which do the same.
    tune_for_long_running_process()
    config = uvicorn.Config(app, log_level="warning", access_log=False, backlog=2048)
    server = uvicorn.Server(config)
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    server.run(sockets=[sock])


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def role_sandbox(args: argparse.Namespace) -> None:
    """The Qualtrics: a survey with N responses recorded (their webhooks are sent by the bench)."""
    from qualflow.sandbox import SandboxState, create_app
    from qualflow.sandbox.respondents import Simulator
    from qualflow.sandbox.seed import customer_satisfaction

    state = SandboxState()
    _user, token = state.default_user()
    survey = customer_satisfaction(state)
    if args.rate_limit:
        state.faults.set_rate_limit(args.rate_limit)
    events = []
    simulator = Simulator(state, survey.id, seed=1)
    while len(events) < args.responses:
        values = simulator.generate(1)[0]
        if values.get("finished") != 1:
            continue
        fresh = {
            k: v for k, v in values.items() if k not in ("startDate", "endDate", "recordedDate")
        }
        response = state.record_response(survey.id, fresh, emit=False)
        events.append(state.response_event(response).fields)
    sock = _bound_socket()
    port = sock.getsockname()[1]
    print(
        json.dumps(
            {
                "url": f"http://127.0.0.1:{port}",
                "token": token,
                "survey_id": survey.id,
                "events": events,
            }
        ),
        flush=True,
    )
    _serve(create_app(state), sock)


class _Counting(httpx.AsyncBaseTransport):
    """Counts the status codes of every Qualtrics answer (429s must stay at zero)."""

    statuses: ClassVar[Counter[int]] = Counter()

    def __init__(self) -> None:
        # One connection pool per event loop: pooled connections belong to the loop they were
        # opened on (the engine's loop, or the short one that enabled the automation).
        self._inner: dict[int, httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        loop = id(asyncio.get_running_loop())
        inner = self._inner.get(loop)
        if inner is None:
            inner = self._inner[loop] = httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=64)
            )
        response = await inner.handle_async_request(request)
        _Counting.statuses[response.status_code] += 1
        return response


def _stats_route(app: Any, engine: Any) -> None:
    from fastapi.responses import JSONResponse

    @app.get("/bench/stats")
    def stats() -> JSONResponse:
        fetcher = engine.services.response_fetcher
        return JSONResponse(
            {
                "cpu": _cpu_seconds(),
                "statuses": dict(_Counting.statuses),
                "fetcher": dict(fetcher.stats),
            }
        )


def _engine(
    args: argparse.Namespace, public_url: str, *, worker: bool, executor_id: str, edge: bool = True
) -> Any:
    from qualflow.connections.clients import configure_clients
    from qualflow.engine.config import EngineConfig
    from qualflow.engine.runtime import Engine
    from qualflow.notify.email import SmtpSettings
    from qualflow.store.secrets import SecretBox

    configure_clients(transport=_Counting())
    return Engine(
        EngineConfig(
            database_url=args.database_url,
            executor_id=executor_id,
            public_base_url=public_url,
            worker=worker,
            edge=edge,
            worker_concurrency=args.concurrency,
            log_level="ERROR",
        ),
        secret_box=SecretBox([args.secret_key]),
        extras={"smtp": SmtpSettings(host="127.0.0.1", port=args.smtp_port, sender="hub@bench")},
    )


def _profile_self(role: str) -> None:
    """With BENCH_PYSPY=DIR, sample this process with py-spy (collapsed stacks in DIR)."""
    directory = os.environ.get("BENCH_PYSPY")
    if not directory:
        return
    out = Path(directory) / f"{role}-{os.getpid()}.txt"
    subprocess.Popen(
        [
            "py-spy", "record", "--pid", str(os.getpid()), "--format", "raw", "--rate", "250",
            "--threads", "--output", str(out), "--nonblocking",
            *os.environ.get("BENCH_PYSPY_ARGS", "").split(),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def role_hub(args: argparse.Namespace) -> None:
    """The web edge + engine; creates and enables the automation, prints how to reach it."""
    _profile_self("hub")
    from fastapi import FastAPI
    from sqlalchemy import select

    from qualflow.connections.models import Connection
    from qualflow.engine.automations import Automations
    from qualflow.engine.models import TriggerEndpoint
    from qualflow.store.db import session_scope
    from qualflow.web import edge

    sock = _bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    engine = _engine(args, url, worker=not args.web_only, executor_id="bench-hub")
    engine.start()
    with session_scope(engine.services.sessionmaker) as session:
        connection = Connection(
            name="sandbox",
            base_url=args.sandbox_url,
            auth_type="token",
            api_token=args.sandbox_token,
            shared=True,
            service_user=False,
            requests_per_minute=3000,
        )
        session.add(connection)
        session.flush()
        connection_id = connection.id
    automations = Automations(engine.services)
    created = automations.create(
        {
            "name": "bench",
            "connection_id": connection_id,
            "trigger": {"type": "survey_response", "survey_id": args.survey_id},
            "steps": [
                {"action": "qualtrics.get_response", "key": "response"},
                {
                    "action": "notify.email",
                    "config": {
                        "to": ["cx@bench.test"],
                        "subject": "Response {{ response.responseId }}",
                        "body": "Satisfaction {{ labels.QID1 }} ({{ values.QID1 }})",
                    },
                },
            ],
        }
    )
    automations.set_enabled(created.id, True)
    with engine.services.sessionmaker() as session:
        endpoint = session.scalar(select(TriggerEndpoint))
        assert endpoint is not None
        token, shared_key = endpoint.token, endpoint.shared_key
    app = FastAPI()
    edge.install(app)
    app.state.qualflow_engine = engine
    _stats_route(app, engine)
    print(
        json.dumps(
            {"url": url, "automation_id": created.id, "token": token, "shared_key": shared_key}
        ),
        flush=True,
    )
    try:
        _serve(app, sock)
    finally:
        engine.stop()


def role_worker(args: argparse.Namespace) -> None:
    """A worker (PostgreSQL scale-out), with a stats endpoint."""
    _profile_self("worker")
    from fastapi import FastAPI

    sock = _bound_socket()
    engine = _engine(args, "http://unused", worker=True, executor_id=args.executor_id, edge=False)
    engine.start()
    app = FastAPI()
    _stats_route(app, engine)
    print(json.dumps({"url": f"http://127.0.0.1:{sock.getsockname()[1]}"}), flush=True)
    try:
        _serve(app, sock)
    finally:
        engine.stop()


# -- the orchestrating process ------------------------------------------------------------------


class SmtpSink:
    """aiosmtpd on a loopback port chosen by the OS, counting messages."""

    def __init__(self) -> None:
        self.count = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = 0
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(10)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK"

    def _run(self) -> None:
        from aiosmtpd.smtp import SMTP

        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            self._loop.create_server(lambda: SMTP(self), "127.0.0.1", 0, backlog=1024)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()


@dataclass
class Proc:
    popen: subprocess.Popen[str]
    info: dict[str, Any]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()


def start_role(role: str, *extra: str) -> Proc:
    errors = None if os.environ.get("BENCH_DEBUG") else tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed below)
    popen = subprocess.Popen(
        [sys.executable, __file__, "--role", role, *extra],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert popen.stdout is not None
    line = popen.stdout.readline()
    if not line:
        popen.wait(30)
        why = ""
        if errors is not None:
            errors.seek(0)
            why = ": " + " | ".join(errors.read().strip().splitlines()[-3:])
        raise RuntimeError(f"the {role} process did not start{why}")
    if errors is not None:
        errors.close()  # the role's later output is not needed
    return Proc(popen, json.loads(line))


def form_body(fields: dict[str, str], shared_key: str, brand: str = "sandbox") -> bytes:
    """A signed delivery, built by the sandbox's own function (as Qualtrics would send it)."""
    from qualflow.sandbox.delivery import form_fields
    from qualflow.sandbox.state import Event, Subscription

    topic = f"surveyengine.completedResponse.{fields['SurveyID']}"
    subscription = Subscription(
        id="SUB_bench",
        topics=topic,
        publication_url="",
        owner_id="",
        shared_key=shared_key,
        brand_id=brand,
    )
    return urlencode(form_fields(Event(topic, fields), subscription)).encode()


async def _post_all(url: str, path: str, bodies: list[bytes], connections: int) -> list[float]:
    """POST every body over ``connections`` keep-alive HTTP/1.1 connections; latencies (s).

    A minimal client on raw streams: a full HTTP library would spend more CPU than the server
    being measured, on the same two cores.
    """
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while True:
                try:
                    body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                head = (
                    f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                started = time.perf_counter()
                writer.write(head + body)
                status_line = await reader.readline()
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if b" 200 " not in status_line:
                    raise RuntimeError(f"delivery refused: {status_line!r}")
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return latencies


def _stats(url: str) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/bench/stats", timeout=30).json())


def _count_finished(database_url: str) -> tuple[int, int]:
    """(succeeded, other final) runs."""
    from sqlalchemy import func, select

    from qualflow.engine.models import FINAL_RUN_STATUSES, Run
    from qualflow.store.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Run.status, func.count()).group_by(Run.status)).all()
    finally:
        engine.dispose()
    counts = {status: int(n) for status, n in rows}
    succeeded = counts.get("succeeded", 0)
    others = sum(n for status, n in counts.items() if status in FINAL_RUN_STATUSES) - succeeded
    return succeeded, others


@dataclass
class Result:
    name: str
    runs: int
    delivered_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    runs_per_s: float = 0.0
    cpu_ms_per_run: float = 0.0
    status_429: int = 0
    emails: int = 0
    notes: list[str] = field(default_factory=list)


def scenario(
    name: str,
    database_url: str,
    responses: int,
    *,
    rate_limit: int | None,
    workers: int,
    connections: int,
    concurrency: int | None,
    limit_s: float,
) -> Result:
    from qualflow.engine.testing import create_schema

    create_schema(database_url)
    from qualflow.store.secrets import SecretBox

    sink = SmtpSink()
    key = SecretBox.generate_key()
    procs: list[Proc] = []
    result = Result(name, responses)
    try:
        sandbox = start_role(
            "sandbox",
            "--responses",
            str(responses),
            *(["--rate-limit", str(rate_limit)] if rate_limit else []),
        )
        procs.append(sandbox)
        common = [
            "--database-url",
            database_url,
            f"--secret-key={key}",  # a key may start with "-"
            "--smtp-port",
            str(sink.port),
            *(["--concurrency", str(concurrency)] if concurrency else []),
        ]
        hub = start_role(
            "hub",
            *common,
            "--sandbox-url",
            sandbox.info["url"],
            f"--sandbox-token={sandbox.info['token']}",
            "--survey-id",
            sandbox.info["survey_id"],
            *(["--web-only"] if workers else []),
        )
        procs.append(hub)
        worker_procs = [
            start_role("worker", *common, "--executor-id", f"bench-worker-{i}")
            for i in range(workers)
        ]
        procs.extend(worker_procs)
        runners = [hub, *worker_procs]
        bodies = [form_body(fields, hub.info["shared_key"]) for fields in sandbox.info["events"]]
        cpu_before = sum(_stats(p.info["url"])["cpu"] for p in runners)

        started = time.perf_counter()
        latencies = asyncio.run(
            _post_all(hub.info["url"], f"/hooks/qualtrics/{hub.info['token']}", bodies, connections)
        )
        posted = time.perf_counter() - started
        print(f"{name}: {responses} deliveries accepted in {posted:.2f} s", file=sys.stderr)
        done = failed = 0
        while done + failed < responses and time.perf_counter() - started < limit_s:
            time.sleep(0.25)
            done, failed = _count_finished(database_url)
        finished = time.perf_counter() - started
        print(f"{name}: {done} runs succeeded after {finished:.2f} s", file=sys.stderr)
        while sink.count < done and time.perf_counter() - started < limit_s:
            time.sleep(0.1)
        stats = [_stats(p.info["url"]) for p in runners]
        cpu = sum(s["cpu"] for s in stats) - cpu_before

        ordered = sorted(latencies)
        result.delivered_per_s = responses / posted
        result.p50_ms = statistics.median(ordered) * 1000
        result.p99_ms = ordered[int(len(ordered) * 0.99) - 1] * 1000
        result.runs_per_s = done / finished
        result.cpu_ms_per_run = cpu * 1000 / max(done, 1)
        result.status_429 = sum(int(s["statuses"].get("429", 0)) for s in stats)
        result.emails = sink.count
        fetched = Counter[str]()
        for s in stats:
            fetched.update(s["fetcher"])
        result.notes.append(
            f"{done}/{responses} runs succeeded, {failed} failed; responses via "
            f"{fetched['single_gets']} GETs, "
            f"{fetched['exports']} exports ({fetched['exported_responses']} rows), "
            f"{fetched['cache_hits']} cache hits"
        )
    finally:
        for proc in reversed(procs):
            proc.stop()
    return result


def postgres_database() -> tuple[str, Any]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = os.environ.get("QUALFLOW_TEST_PG_URL", "postgresql://127.0.0.1:5432/test")
    name = f"qf_bench_{secrets.token_hex(4)}"
    admin = create_engine(
        make_url(base).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(base).set(database=name).render_as_string(hide_password=False), drop


def _best_and_median(results: list[Result]) -> list[tuple[str, Result]]:
    """One row for a single measurement; best and median (per column) for repeats."""
    if len(results) == 1:
        return [("", results[0])]

    def pick(choose: Any) -> Result:
        return Result(
            name=results[0].name,
            runs=results[0].runs,
            delivered_per_s=choose([r.delivered_per_s for r in results], True),
            p50_ms=choose([r.p50_ms for r in results], False),
            p99_ms=choose([r.p99_ms for r in results], False),
            runs_per_s=choose([r.runs_per_s for r in results], True),
            cpu_ms_per_run=choose([r.cpu_ms_per_run for r in results], False),
            status_429=max(r.status_429 for r in results),
            emails=min(r.emails for r in results),
        )

    def best(values: list[float], higher: bool) -> float:
        return max(values) if higher else min(values)

    def median(values: list[float], _higher: bool) -> float:
        return float(statistics.median(values))

    count = len(results)
    return [(f" (best of {count})", pick(best)), (f" (median of {count})", pick(median))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["sandbox", "hub", "worker"])
    parser.add_argument("--responses", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--concurrency", type=int, help="runs at once per process (default: the engine's)"
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument(
        "--repeat", type=int, default=1, help="Run each scenario this many times (best, median)."
    )
    parser.add_argument(
        "--only", choices=["sqlite", "limit", "postgres"], help="Run one scenario only."
    )
    parser.add_argument("--rate-limit", type=int)
    parser.add_argument("--database-url")
    parser.add_argument("--secret-key")
    parser.add_argument("--smtp-port", type=int)
    parser.add_argument("--sandbox-url")
    parser.add_argument("--sandbox-token")
    parser.add_argument("--survey-id")
    parser.add_argument("--web-only", action="store_true")
    parser.add_argument("--executor-id", default="bench-worker")
    args = parser.parse_args()
    if args.role == "sandbox":
        role_sandbox(args)
        return
    if args.role == "hub":
        role_hub(args)
        return
    if args.role == "worker":
        role_worker(args)
        return

    n = args.responses
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="qualflow-bench-") as tmp:
        common = {"connections": args.connections, "concurrency": args.concurrency}

        def measure(name: str, database_url: str, **options: Any) -> None:
            """Run one scenario; a failure is reported and the others still run."""
            try:
                results.append(scenario(name, database_url, n, limit_s=600, **common, **options))
            except Exception as exc:
                print(f"{name}: FAILED — {type(exc).__name__}: {exc}", file=sys.stderr)

        for attempt in range(1, args.repeat + 1):
            if args.only in (None, "sqlite"):
                measure(
                    "SQLite, one process",
                    f"sqlite:///{Path(tmp) / f'a{attempt}.db'}",
                    rate_limit=None,
                    workers=0,
                )
            if args.only in (None, "limit"):
                measure(
                    "SQLite, brand limit 3,000/min",
                    f"sqlite:///{Path(tmp) / f'b{attempt}.db'}",
                    rate_limit=3000,
                    workers=0,
                )
            if args.only in (None, "postgres") and not args.skip_postgres:
                url, drop = postgres_database()
                try:
                    measure("PostgreSQL, web + 2 workers", url, rate_limit=None, workers=2)
                finally:
                    drop()

    table = Table(
        title=f"qualflow ingest: {n} signed webhook deliveries → runs (get_response + email)"
    )
    for column in (
        "scenario",
        "accepted/s",
        "edge p50",
        "edge p99",
        "runs/s",
        "CPU ms/run",
        "429s",
        "emails",
    ):
        table.add_column(column, justify="right" if column != "scenario" else "left")
    for name in dict.fromkeys(r.name for r in results):
        mine = [r for r in results if r.name == name]
        for label, row in _best_and_median(mine):
            table.add_row(
                f"{name}{label}",
                f"{row.delivered_per_s:,.0f}",
                f"{row.p50_ms:.1f} ms",
                f"{row.p99_ms:.1f} ms",
                f"{row.runs_per_s:,.1f}",
                f"{row.cpu_ms_per_run:.1f}",
                str(row.status_429),
                f"{row.emails}/{row.runs}",
            )
    console = Console(width=150)
    console.print(table)
    console.print(
        "targets: >= 1,500 deliveries/s with p99 < 50 ms at the edge; >= 100 runs/s on "
        "SQLite; >= 200 runs/s on PostgreSQL; >= 100 runs/s under the brand limit "
        "with zero 429s"
    )
    for r in results:
        for note in r.notes:
            console.print(f"[dim]{r.name}: {note}[/dim]")
    console.print(
        f"[dim]machine: {os.cpu_count()} CPUs, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end[/dim]"
    )


if __name__ == "__main__":
    main()
