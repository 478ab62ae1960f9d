"""The Qualtrics budget of a connection is shared by every process on one PostgreSQL database.

Processes are real subprocesses (``budget_process``) started together; the assertions count
slots and grants in windows, they never time anything.
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from qualflow.connections.budget import BudgetPlan, SharedBudget, lease_slots, pause_budget
from qualflow.connections.clients import (
    ConnectionLimiter,
    Credentials,
    client_factory,
    client_for,
    client_for_credentials,
    configure_clients,
    limiter_for,
    use_budget_database,
)
from qualflow.connections.models import Connection
from qualflow.qualtrics import RateLimiterBusy, RetryPolicy
from qualflow.sandbox import SandboxState
from qualflow.store.db import make_engine, make_sessionmaker
from tests.connections.budget_process import run_processes

pytestmark = pytest.mark.postgres

SECOND_US = 1_000_000


def most_in_any_window(times: Sequence[float], width: float) -> int:
    """The most of ``times`` that fall in one half-open window ``[t, t + width)``."""
    ordered = sorted(times)
    most, left = 0, 0
    for right, moment in enumerate(ordered):
        while moment - ordered[left] >= width:
            left += 1
        most = max(most, right - left + 1)
    return most


def test_three_processes_leasing_at_once_never_hold_more_than_the_budget(
    postgres_url: str,
) -> None:
    plan = BudgetPlan.per_minute(600)
    results = run_processes(postgres_url, "connection:1", plan, ["leases", "40"], 3)
    slots = [slot for result in results for slot in result["slots"]]
    assert all(result["slots"] for result in results)
    assert len(slots) > 2 * 600, "the processes asked for two minutes' worth of budget"

    ordered = sorted(slots)
    assert len(set(ordered)) == len(ordered), "no slot is given twice"
    assert min(b - a for a, b in itertools.pairwise(ordered)) >= plan.interval_us
    # A request leaves at most `lateness` after its slot, so any minute (plus the margin for
    # requests travelling at different speeds) of requests has its slots in this window:
    reach = round((plan.period + plan.lateness + plan.margin) * SECOND_US)
    assert most_in_any_window(ordered, reach) <= 600
    # ... and the budget is not wasted: nearly all of it is handed out each minute.
    assert most_in_any_window(ordered, 60 * SECOND_US) >= 0.95 * 600


def test_three_processes_granting_at_once_never_exceed_the_budget(postgres_url: str) -> None:
    # A one-second "minute" keeps the test short; the plan's guarantee holds for any period.
    plan = BudgetPlan(
        requests=60, period=1.0, lateness=0.3, margin=0.1, burst=0.2, lease_seconds=0.25
    )
    results = run_processes(postgres_url, "connection:2", plan, ["grants", "40", "4"], 3)
    grants = [moment for result in results for moment in result["grants"]]
    assert len(grants) >= 3 * 40
    assert most_in_any_window(grants, plan.period) <= plan.requests
    for result in results:
        stats = result["stats"]
        assert stats["granted"] == len(result["grants"])
        assert stats["leases"] < stats["granted"], "slots are leased in batches"


def test_a_lone_process_gets_nearly_the_whole_budget(postgres: Engine) -> None:
    plan = BudgetPlan.per_minute(3000)
    leases = [lease_slots(postgres, "connection:3", plan.largest_batch, plan)]
    minute_later = leases[0].first_slot_at + timedelta(seconds=60)
    while leases[-1].slot_times()[-1] < minute_later:
        leases.append(lease_slots(postgres, "connection:3", plan.largest_batch, plan))
    slots = [moment for lease in leases for moment in lease.slot_times()]
    # Each lease continues where the previous one ended: nothing between them is lost.
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(slots)}
    assert gaps == {plan.interval}
    in_first_minute = [s for s in slots if (s - slots[0]).total_seconds() < 60]
    assert len(in_first_minute) >= 0.95 * 3000


def test_a_busy_process_leases_in_batches(postgres: Engine) -> None:
    budget = SharedBudget(postgres, "connection:4", BudgetPlan.per_minute(3000))
    for _ in range(150):
        budget.acquire()
    stats = budget.stats()
    assert stats.granted == 150
    assert stats.leases <= 15, "at most one round trip per ten requests"


def test_a_429_in_one_process_holds_back_every_process(postgres: Engine) -> None:
    plan = BudgetPlan.per_minute(3000)
    lease_slots(postgres, "connection:5", 1, plan)
    limiter = ConnectionLimiter(3000)
    limiter.share_budget(postgres, "connection:5")
    limiter.pause(30.0)  # what a client does on a 429 with Retry-After: 30
    # The database is told from a thread of its own (the client is on its event loop).
    for thread in threading.enumerate():
        if thread.name == "qualtrics-budget-pause":
            thread.join()
    other_process = lease_slots(postgres, "connection:5", 1, plan)
    assert other_process.first_offset > 29.0


def test_limiters_share_the_budget_on_postgres_and_limit_alone_on_sqlite(
    postgres: Engine, tmp_path: Path
) -> None:
    sqlite = make_engine(f"sqlite:///{tmp_path / 'embedded.db'}")
    connection_id = 990_000 + uuid.uuid4().int % 9_999
    try:
        client_factory(make_sessionmaker(sqlite))
        limiter = limiter_for(connection_id, 600)
        assert limiter.shared_budget is None

        client_factory(make_sessionmaker(postgres))
        assert limiter_for(connection_id, 1200) is limiter
        shared = limiter.shared_budget
        assert shared is not None
        assert shared.database is postgres
        assert shared.key == f"connection:{connection_id}"
        assert shared.plan.requests == 1200

        limiter.retune(900)
        assert shared.plan.requests == 900
        assert limiter.requests_per_minute == 900
    finally:
        use_budget_database(None)
        limiter_for(connection_id, 600, database=sqlite)
        sqlite.dispose()


def test_a_connection_loaded_from_postgres_gets_a_client_on_the_shared_budget(
    postgres: Engine,
) -> None:
    connection_id = 980_000 + uuid.uuid4().int % 9_999
    connection = Connection(
        id=connection_id,
        name="shared budget",
        base_url="http://sandbox.qualflow.test",
        auth_type="token",
        api_token="token",
        requests_per_minute=1500,
    )

    async def limiter_of_a_client() -> object:
        async with client_for(connection) as qualtrics:
            return qualtrics.rate_limiter

    with make_sessionmaker(postgres)() as session:
        session.add(connection)  # never flushed: only its session's database matters here
        limiter = anyio.run(limiter_of_a_client)
    assert isinstance(limiter, ConnectionLimiter)
    shared = limiter.shared_budget
    assert shared is not None
    assert shared.database is postgres
    assert shared.plan.requests == 1500
    assert limiter is limiter_for(connection_id, 1500, database=postgres)


def test_without_its_database_a_limiter_limits_alone(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    missing = make_url(postgres_url).set(database=f"qf_missing_{uuid.uuid4().hex[:8]}")
    database = make_engine(missing.render_as_string(hide_password=False))
    try:
        limiter = ConnectionLimiter(600)
        limiter.share_budget(database, "connection:6")
        with caplog.at_level(logging.WARNING, logger="qualflow.connections.budget"):
            limiter.acquire()
            limiter.acquire()
        shared = limiter.shared_budget
        assert shared is not None
        assert shared.stats().leases == 0
        assert sum("unavailable" in record.getMessage() for record in caplog.records) == 1
    finally:
        database.dispose()


def test_clients_in_separate_limiters_never_meet_a_429(
    postgres: Engine, sandbox_state: SandboxState, sandbox_transport: httpx.ASGITransport
) -> None:
    _user, token = sandbox_state.create_user("budget@example.org")
    sandbox_state.faults.set_rate_limit(600)
    limiters = [ConnectionLimiter(600) for _ in range(3)]
    for limiter in limiters:
        limiter.share_budget(postgres, "connection:7")
    credentials = Credentials(base_url="http://sandbox.qualflow.test", api_token=token)
    configure_clients(transport=sandbox_transport)
    try:
        answered: list[str] = []

        async def calls(limiter: ConnectionLimiter) -> None:
            # One attempt each: a 429 would raise instead of being retried away.
            retry = RetryPolicy.never()
            async with client_for_credentials(
                credentials, rate_limiter=limiter, retry=retry
            ) as qualtrics:
                for _ in range(12):
                    answered.append((await qualtrics.whoami()).user_id)

        async def main() -> None:
            async with anyio.create_task_group() as group:
                for limiter in limiters:
                    group.start_soon(calls, limiter)

        anyio.run(main)
        assert len(answered) == 36
    finally:
        configure_clients(transport=None)
    granted = 0
    for limiter in limiters:
        shared = limiter.shared_budget
        assert shared is not None
        granted += shared.stats().granted
    assert granted == 36


def test_a_caller_that_will_not_wait_is_refused_and_its_slot_serves_the_next(
    postgres: Engine,
) -> None:
    plan = BudgetPlan.per_minute(1)  # a slot every ~63 s
    budget = SharedBudget(postgres, "connection:11", plan)
    budget.acquire(max_wait=5)  # the first lease starts a second in the past: no wait
    with pytest.raises(RateLimiterBusy) as info:
        budget.acquire(max_wait=5)
    assert info.value.retry_after == pytest.approx(plan.interval - plan.burst, abs=2)
    assert "1 request per minute" in str(info.value)
    with pytest.raises(RateLimiterBusy):
        anyio.run(lambda: budget.acquire_async(max_wait=5))
    # The second refusal took the slot the first gave back: no third slot was leased, so
    # refusals do not spend the budget the workers need.
    assert budget.stats().leases == 2
    another_process = lease_slots(postgres, "connection:11", 1, plan)
    assert another_process.first_offset > 2 * plan.interval - plan.burst - 2


def test_raising_a_very_low_rate_does_not_wait_out_the_slots_leased_at_it(
    postgres: Engine,
) -> None:
    slow = BudgetPlan.per_minute(1)  # a slot every ~63 s
    budget = SharedBudget(postgres, "connection:12", slow)
    budget.acquire(max_wait=5)
    with pytest.raises(RateLimiterBusy):
        budget.acquire(max_wait=5)  # its next slot is leased ~a minute ahead
    other_process = lease_slots(postgres, "connection:12", 1, slow)
    assert other_process.first_offset > 2 * slow.interval - slow.burst - 2

    budget.retune(3000)
    budget.acquire(max_wait=5)  # not ~2 minutes for the slots leased at 1/min
    fast = budget.plan
    after = lease_slots(postgres, "connection:12", 1, fast)
    assert after.first_offset <= fast.rebase_within
    assert budget.stats().void >= 1, "the slot held at the old rate was dropped"


def test_only_a_raise_pulls_the_budget_back(postgres: Engine) -> None:
    plan = BudgetPlan.per_minute(600)
    budget = SharedBudget(postgres, "connection:13", plan)
    budget.acquire(max_wait=5)
    pause_budget(postgres, "connection:13", 30.0)  # another process met a 429
    budget.retune(300)

    def spend_what_it_holds() -> None:
        for _ in range(budget.plan.largest_batch + 2):
            budget.acquire(max_wait=5)

    with pytest.raises(RateLimiterBusy):  # once the slots it held are spent, the pause holds
        spend_what_it_holds()
    assert lease_slots(postgres, "connection:13", 1, budget.plan).first_offset > 25
    budget.retune(3000)
    budget.acquire(max_wait=5)
