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
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from qualflow.connections.budget import BudgetPlan
from qualflow.store.db import normalize_url
from qualflow.store.migrate import migrate

# The drawing processes are the cross-process tests' own (importable from the repository root).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.connections.budget_process import run_processes

DEFAULT_PG_URL = "postgresql://127.0.0.1:5432/test"
#: A budget no process can spend: what is measured is the leasing and handing out itself.
UNLIMITED = 600_000_000.0


def run(
    url: str, requests_per_minute: float, processes: int, grants: int, tasks: int, skip: float
) -> dict[str, Any]:
    """Start ``processes`` workers at once; the totals and the rate while all of them drew."""
    key = f"bench:{uuid.uuid4().hex[:8]}"
    plan = BudgetPlan.per_minute(requests_per_minute)
    results = run_processes(url, key, plan, ["grants", str(grants), str(tasks)], processes)
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
    args = parser.parse_args()

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
