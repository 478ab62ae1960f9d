"""One process drawing from a shared Qualtrics budget, for the cross-process tests and bench.

``python -m tests.connections.budget_process URL KEY PLAN MODE N [TASKS]`` prints ``ready``,
waits for one line on stdin (so that every process starts drawing at once), draws, and prints
one JSON line:

* ``leases N``: N leases of 1 to 20 slots; ``slots`` are the slot times (microseconds since the
  epoch, database clock);
* ``grants N TASKS``: TASKS tasks acquire from one :class:`SharedBudget` until the process has N
  grants; ``grants`` are when each was granted (``time.monotonic()``, which is one clock for
  every process of a Linux machine), with the budget's ``stats``.

``PLAN`` is the :class:`BudgetPlan` as JSON.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from qualflow.connections.budget import BudgetPlan, SharedBudget, lease_slots
from qualflow.store.db import make_engine

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def _microseconds(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def draw_leases(database: Engine, key: str, plan: BudgetPlan, leases: int) -> dict[str, Any]:
    slots: list[int] = []
    for number in range(leases):
        lease = lease_slots(database, key, 1 + (number * 7) % 20, plan)
        slots.extend(_microseconds(moment) for moment in lease.slot_times())
    return {"slots": slots}


def draw_grants(
    database: Engine, key: str, plan: BudgetPlan, grants: int, tasks: int
) -> dict[str, Any]:
    budget = SharedBudget(database, key, plan)
    granted: list[float] = []

    async def draw() -> None:
        while len(granted) < grants:
            await budget.acquire_async()
            granted.append(time.monotonic())

    async def main() -> None:
        await asyncio.gather(*(draw() for _ in range(tasks)))

    asyncio.run(main())
    return {"grants": granted, "stats": asdict(budget.stats())}


def run_processes(
    url: str, key: str, plan: BudgetPlan, args: list[str], processes: int
) -> list[Any]:
    """Start ``processes`` budget processes, let them draw at once, return their results."""
    command = [sys.executable, "-m", "tests.connections.budget_process", url, key]
    command += [json.dumps(asdict(plan)), *args]
    started = [
        subprocess.Popen(
            command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    try:
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
            out, _ = process.communicate(timeout=300)
            if process.returncode != 0:
                raise RuntimeError(f"a budget process failed ({process.returncode})")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()


def main(argv: list[str]) -> None:
    url, key, plan_json, mode, count, *rest = argv
    plan = BudgetPlan(**json.loads(plan_json))
    database = make_engine(url)
    try:
        print("ready", flush=True)
        sys.stdin.readline()
        if mode == "leases":
            result = draw_leases(database, key, plan, int(count))
        else:
            result = draw_grants(database, key, plan, int(count), int(rest[0]))
    finally:
        database.dispose()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
