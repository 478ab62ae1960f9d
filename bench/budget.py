"""Shared Qualtrics budget: grants per second for 1 and 3 processes, database calls per request.

Each process is a real subprocess drawing from one connection's budget on a scratch PostgreSQL
database (``QUALFLOW_TEST_PG_URL``, default the local service), with several tasks acquiring at
once as the engine's runs do. Two budgets: Qualtrics' 3,000 a minute (how much of the quota the
processes get together) and one nobody can spend (what the leasing itself can hand out).
"DB calls / 100" counts lease statements per 100 grants (each also costs the pool's pre-ping).

Run: .venv/bin/python bench/budget.py [--grants N] [--tasks N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from qualflow.connections.budget import BudgetPlan, SharedBudget
from qualflow.store.db import make_engine, normalize_url
from qualflow.store.migrate import migrate

DEFAULT_PG_URL = "postgresql://127.0.0.1:5432/test"
#: A budget no process can spend: what is measured is the leasing and handing out itself.
UNLIMITED = 600_000_000.0


def worker(url: str, key: str, requests_per_minute: float, grants: int, tasks: int) -> None:
    """One process: ``tasks`` tasks acquire until ``grants`` were granted; prints JSON."""
    database = make_engine(url)
    budget = SharedBudget(database, key, BudgetPlan.per_minute(requests_per_minute))
    granted: list[float] = []

    async def draw() -> None:
        while len(granted) < grants:
            await budget.acquire_async()
            granted.append(time.monotonic())

    async def main() -> None:
        await asyncio.gather(*(draw() for _ in range(tasks)))

    try:
        print("ready", flush=True)
        sys.stdin.readline()
        asyncio.run(main())
    finally:
        database.dispose()
    print(json.dumps({"grants": granted, "stats": asdict(budget.stats())}), flush=True)


def run(
    url: str, requests_per_minute: float, processes: int, grants: int, tasks: int, skip: float
) -> dict[str, Any]:
    """Start ``processes`` workers at once; the totals and the rate while all of them drew."""
    key = f"bench:{uuid.uuid4().hex[:8]}"
    command = [sys.executable, __file__, "--worker", url, key, str(requests_per_minute)]
    command += [str(grants), str(tasks)]
    started = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    for process in started:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("a budget process did not start")
    for process in started:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    results = []
    for process in started:
        out, _ = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"a budget process failed ({process.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    times = sorted(moment for result in results for moment in result["grants"])
    leases = sum(result["stats"]["leases"] for result in results)
    void = sum(result["stats"]["void"] for result in results)
    # The rate while every process draws: not the one-off burst a quiet budget allows at first
    # (`skip` seconds), nor the tail where processes that are done leave leased slots unused.
    start = max(result["grants"][0] for result in results) + skip
    end = min(result["grants"][-1] for result in results)
    steady = [moment for moment in times if start <= moment <= end]
    rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else float("nan")
    return {
        "grants": len(times),
        "seconds": times[-1] - times[0],
        "rate": rate,
        "calls_per_100": 100 * leases / len(times),
        "void": void,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grants", type=int, default=600, help="grants per 3,000/min scenario")
    parser.add_argument("--tasks", type=int, default=8, help="tasks acquiring in each process")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        url, key, rate, grants, tasks = args.worker
        worker(url, key, float(rate), int(grants), int(tasks))
        return

    server = os.environ.get("QUALFLOW_TEST_PG_URL", DEFAULT_PG_URL)
    name = f"qf_bench_budget_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalize_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    table = Table(title="Shared Qualtrics budget (one connection, PostgreSQL)")
    for column in ("budget / min", "processes", "grants", "seconds", "grants/s (all drawing)"):
        table.add_column(column, justify="right")
    for column in ("share of quota", "DB calls / 100", "void slots"):
        table.add_column(column, justify="right")
    try:
        migrate(url)
        scenarios = [
            (3000.0, 1, args.grants),
            (3000.0, 3, args.grants // 3),
            (UNLIMITED, 1, 100 * args.grants),
            (UNLIMITED, 3, 100 * args.grants // 3),
        ]
        for rate, processes, grants in scenarios:
            limited = rate < UNLIMITED
            result = run(url, rate, processes, grants, args.tasks, 1.0 if limited else 0.0)
            table.add_row(
                f"{rate:,.0f}" if limited else "unlimited",
                str(processes),
                str(result["grants"]),
                f"{result['seconds']:.2f}",
                f"{result['rate']:,.0f}",
                f"{100 * result['rate'] / (rate / 60):.1f} %" if limited else "-",
                f"{result['calls_per_100']:.1f}",
                str(result["void"]),
            )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
