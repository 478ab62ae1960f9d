"""Runs end to end on SQLite: steps, retries, failures, replay, cancel, versions, duplicates."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from qualflow.engine.automations import Automations
from qualflow.engine.dispatch import RunRequest, start_runs
from qualflow.engine.errors import ConflictError
from qualflow.engine.runs import RunDetail, Runs
from qualflow.engine.runtime import Engine
from tests.engine.engine_support import CALLS, FAILURES, GATES

Wait = Callable[..., RunDetail]


def schedule_automation(steps: list[dict[str, Any]], name: str = "nightly") -> dict[str, Any]:
    return {"name": name, "trigger": {"type": "schedule", "cron": "0 3 * * *"}, "steps": steps}


def rec(label: str, **extra: Any) -> dict[str, Any]:
    return {"action": "test.record", "key": label, "config": {"label": label, **extra}}


def test_run_executes_steps_in_order_and_records_history(engine: Engine, wait_run: Wait) -> None:
    automations = Automations(engine.services)
    created = automations.create(schedule_automation([rec("first"), rec("second")]))
    run_id = automations.run_now(created.id, {"customer": "ada"})

    run = wait_run(run_id)

    assert run.status == "succeeded", run.error
    assert [s.key for s in run.steps] == ["first", "second"]
    assert all(s.status == "succeeded" and s.attempts == 1 for s in run.steps)
    assert run.steps[0].output == {"label": "first", "n": 1}
    # The second step saw the first step's output.
    assert CALLS["second"][0]["outputs"] == {"first": {"label": "first", "n": 1}}
    assert CALLS["first"][0]["trigger"]["data"] == {"customer": "ada"}
    assert run.automation_version == 1
    assert [a.status for a in run.attempts] == ["succeeded"]


def test_a_worker_runs_its_steps_on_uvloop_and_leaves_the_policy_as_it_was(
    engine: Engine, wait_run: Wait
) -> None:
    uvloop = pytest.importorskip("uvloop")
    # The engine fixture starts outside any event loop, as `qualflow worker` does: DBOS runs
    # the runs on a loop of its own, built on uvloop.
    assert not isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
    automations = Automations(engine.services)
    created = automations.create(schedule_automation([rec("loop")]))

    run = wait_run(automations.run_now(created.id, {}))

    assert run.status == "succeeded", run.error
    assert CALLS["loop"][0]["loop"] is uvloop.Loop


def test_retriable_errors_are_retried_then_succeed(engine: Engine, wait_run: Wait) -> None:
    FAILURES["flaky"] = ["retriable", "retriable"]
    automations = Automations(engine.services)
    created = automations.create(schedule_automation([rec("flaky")]))

    run = wait_run(automations.run_now(created.id))

    assert run.status == "succeeded"
    assert run.steps[0].attempts == 3
    assert [c["attempt"] for c in CALLS["flaky"]] == [1, 2, 3]


def test_a_write_registered_with_the_step_commits_only_when_the_step_succeeds(
    engine: Engine, wait_run: Wait
) -> None:
    automations = Automations(engine.services)
    created = automations.create(schedule_automation([rec("noted", note_with_step=True)]))
    FAILURES["noted"] = ["retriable", "fatal"]

    failed = wait_run(automations.run_now(created.id))

    assert failed.status == "failed"
    assert failed.steps[0].attempts == 2
    assert "noted attempt" not in failed.trigger_summary  # neither attempt's write was kept
    FAILURES["noted"] = ["retriable"]

    succeeded = wait_run(automations.run_now(created.id, {"second": True}))

    assert succeeded.status == "succeeded"
    assert succeeded.trigger_summary == "noted attempt 2"


def test_retries_are_bounded(engine: Engine, wait_run: Wait) -> None:
    FAILURES["down"] = ["retriable"] * 10
    automations = Automations(engine.services)
    created = automations.create(schedule_automation([rec("down"), rec("after")]))

    run = wait_run(automations.run_now(created.id))

    assert run.status == "failed"
    assert run.error is not None
    assert "gave up after 4 attempts" in run.error
    assert len(CALLS["down"]) == 4
    assert "after" not in CALLS


def test_fatal_error_fails_the_run_and_replay_resumes_from_the_failed_step(
    engine: Engine, wait_run: Wait
) -> None:
    FAILURES["charge"] = ["fatal"]
    automations = Automations(engine.services)
    created = automations.create(schedule_automation([rec("fetch"), rec("charge"), rec("notify")]))
    run_id = automations.run_now(created.id)

    failed = wait_run(run_id)
    assert failed.status == "failed"
    assert failed.error == "charge: permanent problem"
    assert [s.status for s in failed.steps] == ["succeeded", "failed"]

    runs = Runs(engine.services)
    runs.replay(run_id, actor="ops@example.org")
    replayed = wait_run(run_id)

    assert replayed.status == "succeeded"
    assert replayed.attempt == 2
    # The finished step was not repeated; the failed one ran again, then the rest.
    assert len(CALLS["fetch"]) == 1
    assert len(CALLS["charge"]) == 2
    assert len(CALLS["notify"]) == 1
    assert [(a.number, a.status) for a in replayed.attempts] == [(1, "failed"), (2, "succeeded")]
    assert replayed.attempts[0].error == "charge: permanent problem"
    assert replayed.attempts[1].requested_by == "ops@example.org"
    assert replayed.attempts[1].from_position == 1


def test_replaying_a_succeeded_run_is_refused(engine: Engine, wait_run: Wait) -> None:
    automations = Automations(engine.services)
    created = automations.create(schedule_automation([rec("one")]))
    run_id = automations.run_now(created.id)
    wait_run(run_id)

    with pytest.raises(ConflictError, match="only failed or cancelled"):
        Runs(engine.services).replay(run_id)


def test_skip_step_continues_and_condition_stops_the_run(engine: Engine, wait_run: Wait) -> None:
    FAILURES["optional"] = ["skip"]
    automations = Automations(engine.services)
    created = automations.create(
        schedule_automation(
            [
                rec("optional"),
                {"action": "condition", "config": {"expression": "trigger.data.score >= 9"}},
                rec("promoter"),
            ]
        )
    )

    low = wait_run(automations.run_now(created.id, {"score": "6"}))
    high = wait_run(automations.run_now(created.id, {"score": 10}))

    assert low.status == "skipped"
    assert low.error == "condition not met: trigger.data.score >= 9"
    assert [s.status for s in low.steps] == ["skipped", "stopped"]
    assert high.status == "succeeded"
    assert len(CALLS["promoter"]) == 1


def test_edits_create_versions_and_runs_record_theirs(engine: Engine, wait_run: Wait) -> None:
    automations = Automations(engine.services)
    created = automations.create(schedule_automation([rec("v")]))
    first = wait_run(automations.run_now(created.id))

    updated = automations.update(created.id, schedule_automation([rec("v"), rec("w")]))
    second = wait_run(automations.run_now(created.id))

    assert updated.version == 2
    assert [v.version for v in automations.versions(created.id)] == [2, 1]
    assert first.automation_version == 1
    assert len(first.steps) == 1
    assert second.automation_version == 2
    assert len(second.steps) == 2


def test_duplicate_events_land_on_one_run(engine: Engine, wait_run: Wait) -> None:
    automations = Automations(engine.services)
    created = automations.create(schedule_automation([rec("once")]))
    request = RunRequest(created.id, "SV_abc:R_123", {"type": "survey_response", "summary": "x"})
    results: list[list[str]] = []

    def deliver() -> None:
        results.append(start_runs(engine.services, [request]))

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    run = wait_run(request.run_id)
    assert {tuple(r) for r in results} == {(request.run_id,)}
    assert run.status == "succeeded"
    assert len(CALLS["once"]) == 1
    assert Runs(engine.services).query(automation_id=created.id).total == 1


def test_cancel_stops_a_running_run_before_its_next_step(engine: Engine, wait_run: Wait) -> None:
    automations = Automations(engine.services)
    created = automations.create(schedule_automation([rec("slow", gate="g"), rec("later")]))
    run_id = automations.run_now(created.id)
    wait_run(run_id, statuses=("running",))
    while "slow" not in CALLS:
        threading.Event().wait(0.01)

    cancelled = Runs(engine.services).cancel(run_id, actor="ops")
    GATES["g"].set()

    assert cancelled.status == "cancelled"
    assert cancelled.error == "cancelled by ops"
    final = wait_run(run_id)
    assert final.status == "cancelled"
    # The interrupted step finishes and records itself; its workflow must then stop there.
    runs = Runs(engine.services)
    while not [s for s in runs.get(run_id).steps if s.status != "running"]:
        threading.Event().wait(0.01)
    # Another run through the same engine gives the cancelled workflow's next step (if it
    # wrongly had one) every chance to start first.
    other = automations.create(schedule_automation([rec("afterwards")], name="other"))
    wait_run(automations.run_now(other.id))
    assert [s.key for s in runs.get(run_id).steps] == ["slow"]
    assert "later" not in CALLS
    with pytest.raises(ConflictError):
        Runs(engine.services).cancel(run_id)


def test_run_listing_filters_by_automation_and_status(engine: Engine, wait_run: Wait) -> None:
    automations = Automations(engine.services)
    a = automations.create(schedule_automation([rec("a")], name="a"))
    b = automations.create(schedule_automation([rec("b")], name="b"))
    FAILURES["b"] = ["fatal"]
    for run_id in [automations.run_now(a.id), automations.run_now(a.id), automations.run_now(b.id)]:
        wait_run(run_id)

    runs = Runs(engine.services)
    assert runs.query(automation_id=a.id).total == 2
    assert [r.automation_id for r in runs.query(status="failed").items] == [b.id]
    page = runs.query(limit=1, offset=1)
    assert page.total == 3
    assert len(page.items) == 1
    with pytest.raises(ValueError, match="unknown status"):
        runs.query(status="exploded")
