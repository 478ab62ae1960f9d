"""The lists people open every day send as many SQL statements for a page of many rows as for
a page of a few (no query per row), say the right totals without a COUNT where the page itself
tells, and read a page off an index instead of sorting every row (``bench/hub_lists.py``
measures them at a year's scale)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, insert
from sqlalchemy.engine import Engine

from qualflow.engine.models import Automation, AutomationVersion, Run, RunAttempt, RunStep
from qualflow.incentives.ids import ALPHABET
from qualflow.incentives.models import Incentive, Reward
from qualflow.notify.models import OutboxEmail
from qualflow.store.base import utcnow
from qualflow.store.runtime import Store
from tests.hub.hub_support import MakePerson, Person, sign_in

BIG, SMALL = "INC-BBBBBB", "INC-SSSSSS"
STATUSES = ("succeeded", "failed", "succeeded", "skipped")
REWARD_STATUSES = ("sent", "held", "sent", "blocked", "failed")


def _reward_reference(number: int) -> str:
    """``RW-`` and ``number`` in the reference ids' alphabet."""
    digits = ""
    for _ in range(8):
        number, digit = divmod(number, len(ALPHABET))
        digits = ALPHABET[digit] + digits
    return "RW-" + digits


class Seeder:
    """Adds automations with runs (and their steps), emails, and rewards of two incentives,
    straight into the database, each call after the last in time."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.moment = utcnow() - timedelta(days=30)
        self.runs = 0
        self.emails = 0
        self.rewards = 0
        with self.engine.begin() as connection:
            for number in (1, 2, 3):
                connection.execute(
                    insert(Automation).values(
                        id=number, name=f"Automation {number}", trigger_type="json_event",
                        version=1, enabled=True,
                    )
                )  # fmt: skip
                connection.execute(
                    insert(AutomationVersion).values(
                        automation_id=number, version=1,
                        definition={
                            "name": f"Automation {number}",
                            "trigger": {"type": "json_event"},
                            "steps": [{"action": "condition", "config": {"expression": "true"}}],
                        },
                    )
                )  # fmt: skip
            for id_, reference in ((1, BIG), (2, SMALL)):
                connection.execute(
                    insert(Incentive).values(
                        id=id_, reference_id=reference, name=reference, provider="manual",
                        amount_minor=500, currency="USD", email_subject="Thanks",
                        email_body="Thank you.", fraud_rules={}, approval_mode="review_suspicious",
                    )
                )  # fmt: skip

    def _tick(self) -> Any:
        self.moment += timedelta(minutes=1)
        return self.moment

    def add(self, count: int) -> None:
        """``count`` more runs of each automation, emails, and rewards of each incentive."""
        with self.engine.begin() as connection:
            for _ in range(count):
                for automation_id in (1, 2, 3):
                    self.runs += 1
                    run_id = f"{automation_id}:event:{self.runs}"
                    status = STATUSES[self.runs % len(STATUSES)]
                    created = self._tick()
                    connection.execute(
                        insert(Run).values(
                            id=run_id, automation_id=automation_id, automation_version=1,
                            trigger_type="json_event", trigger_summary=f"event {self.runs}",
                            trigger_payload={"type": "json_event", "body": {"n": self.runs}},
                            status=status, workflow_id=run_id, created_at=created,
                            started_at=created, finished_at=created + timedelta(seconds=1),
                        )
                    )  # fmt: skip
                    connection.execute(
                        insert(RunAttempt).values(
                            run_id=run_id, number=1, workflow_id=run_id, status=status,
                            started_at=created,
                        )
                    )  # fmt: skip
                    for position in (0, 1):
                        connection.execute(
                            insert(RunStep).values(
                                run_id=run_id, position=position, key=f"s{position}",
                                action="condition", status="succeeded", input_summary={},
                                output={"ok": True}, attempts=1,
                            )
                        )  # fmt: skip
                self.emails += 1
                connection.execute(
                    insert(OutboxEmail).values(
                        idempotency_key=f"mail-{self.emails}", run_id=f"1:event:{self.runs}",
                        sender="hub@example.org", recipients=["someone@example.org"],
                        subject=f"Email {self.emails}", body_text="Hello",
                        status="failed" if self.emails % 3 == 0 else "sent",
                        created_at=self._tick(),
                    )
                )  # fmt: skip
                for incentive_id in (1, 2):
                    self.rewards += 1
                    status = REWARD_STATUSES[self.rewards % len(REWARD_STATUSES)]
                    email = f"person{self.rewards}@example.org"
                    connection.execute(
                        insert(Reward).values(
                            reference_id=_reward_reference(self.rewards),
                            incentive_id=incentive_id, status=status, email=email,
                            email_normalized=email, source="automation",
                            requested_by="run:x", amount_minor=500, currency="USD",
                            provider="manual", reasons=["held for review"],
                            delivery='{"code": "SECRET"}' if status == "sent" else None,
                            delivery_hint="code ending CRET" if status == "sent" else None,
                            created_at=self._tick(),
                        )
                    )  # fmt: skip


class Statements:
    """The statements every engine of this process sends (with their parameters)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        with self._lock:
            self.seen.append((statement, parameters))

    @contextmanager
    def listening(self) -> Iterator[None]:
        event.listen(Engine, "before_cursor_execute", self)
        try:
            yield
        finally:
            event.remove(Engine, "before_cursor_execute", self)


def _statements(client: TestClient, person: Person, path: str) -> int:
    """Statements one request sends: the fewest of three (the app's background loops may add
    one to a request now and then)."""
    counted = []
    for _ in range(3):
        recorder = Statements()
        with recorder.listening():
            answer = client.get(path, headers=person.headers)
        assert answer.status_code == 200, (path, answer.text[:300])
        counted.append(len(recorder.seen))
    return min(counted)


LISTS = (
    "/runs",
    "/runs?status=failed",
    "/runs?automation=1",
    "/outbox",
    "/outbox?status=failed",
    "/automations",
    f"/incentives/{BIG}",
    f"/incentives/{BIG}?status=sent",
    "/incentives/review-queue",
    "/api/v1/runs",
    "/api/v1/runs?automation_id=1&status=failed",
    "/api/v1/runs/1:event:1",
    "/api/v1/automations",
    "/api/v1/incentives/rewards",
    "/api/v1/incentives/rewards?status=held",
    f"/api/v1/incentives/{BIG}/rewards",
    f"/api/v1/incentives/{BIG}/rewards.csv",
)


@pytest.fixture
def seeded(client: TestClient, make_person: MakePerson) -> tuple[Seeder, Person]:
    person = make_person("admin", password=True)
    sign_in(client, person)
    return Seeder(client.app.state.store), person  # type: ignore[attr-defined]


def test_a_longer_list_sends_no_more_statements(
    client: TestClient, seeded: tuple[Seeder, Person]
) -> None:
    seeder, person = seeded
    seeder.add(2)
    few = {path: _statements(client, person, path) for path in LISTS}
    seeder.add(5)  # still one page of each (shorter than every page size)
    more = {path: _statements(client, person, path) for path in LISTS}
    assert more == few, (few, more)
    # What a page sends of its own, beside what any signed-in request sends (a page that needs
    # no database: the actions' list).
    signed_in = _statements(client, person, "/api/v1/actions")
    own = {path: count - signed_in for path, count in few.items()}
    assert own["/api/v1/runs"] == 1  # a short page says its total: no COUNT
    assert own["/outbox"] == 2  # the count per status (which is the total too), the page
    assert own["/automations"] <= 7
    assert own[f"/incentives/{BIG}"] <= 4


def _total(client: TestClient, person: Person, query: str) -> tuple[int, int]:
    page = client.get(f"/api/v1/runs?{query}", headers=person.headers).json()
    return len(page["items"]), page["total"]


def test_run_totals_whether_or_not_the_page_says_them(
    client: TestClient, seeded: tuple[Seeder, Person]
) -> None:
    seeder, person = seeded
    seeder.add(4)  # 12 runs: automation 1 has 4, of which 1 failed
    assert _total(client, person, "limit=5") == (5, 12)  # a full page: counted
    assert _total(client, person, "limit=5&offset=10") == (2, 12)  # the last page says it
    assert _total(client, person, "limit=5&offset=12") == (0, 12)  # past the end: counted
    assert _total(client, person, "limit=5&offset=40") == (0, 12)
    assert _total(client, person, "automation_id=1") == (4, 4)
    assert _total(client, person, "automation_id=1&status=failed") == (1, 1)
    assert _total(client, person, "automation_id=1&status=queued") == (0, 0)
    first = client.get("/api/v1/runs?limit=1", headers=person.headers).json()["items"][0]
    assert first["id"] == "3:event:12"  # newest first
    assert first["trigger_summary"] == "event 12"
    assert first["duration_ms"] == 1000


def test_list_pages_count_what_they_show(client: TestClient, seeded: tuple[Seeder, Person]) -> None:
    seeder, person = seeded
    seeder.add(6)  # 6 emails (2 failed), 6 rewards of each incentive
    outbox = client.get("/outbox").text
    assert "6 emails" in outbox
    assert "All · 6" in outbox
    assert "Failed · 2" in outbox
    assert "2 emails" in client.get("/outbox?status=failed").text
    incentive = client.get(f"/incentives/{BIG}").text
    assert "6 rewards" in incentive
    assert re.search(r"Sent · 2\b", incentive), incentive
    assert "2 rewards" in client.get(f"/incentives/{BIG}?status=sent").text
    assert "code ending CRET" in incentive  # the hint is shown; the delivery is not read
    listed = client.get(f"/api/v1/incentives/{BIG}/rewards", headers=person.headers).json()
    assert listed["total"] == 6
    assert [item["delivery"] for item in listed["items"]].count("code ending CRET") == 2


def test_the_automations_list_shows_each_ones_newest_run_and_count(
    client: TestClient, seeded: tuple[Seeder, Person]
) -> None:
    seeder, _person = seeded
    seeder.add(3)  # runs 1..9, automation 3's newest is run 9
    page = client.get("/automations").text
    for automation_id, newest in ((1, 7), (2, 8), (3, 9)):
        row = page.split(f'data-automation="Automation {automation_id}"', 1)[1].split("</tr>")[0]
        assert f"/runs/{automation_id}:event:{newest}" in row, row
        assert f'?automation={automation_id}">3</a>' in row, row


# -- the plans ----------------------------------------------------------------------------------


def _list_query(recorder: Statements, table: str) -> tuple[str, Any]:
    """The page's ORDER BY query over ``table`` (the first, if a page sends several)."""
    for statement, parameters in recorder.seen:
        flat = " ".join(statement.split())
        if f"FROM {table}" in flat and "ORDER BY" in flat and "LIMIT" in flat:
            return statement, parameters
    raise AssertionError(f"no list query over {table}")


def _plan(store: Store, statement: str, parameters: Any) -> str:
    """The plan the database makes for the statement. On PostgreSQL, with sorting (and plain
    table scans) priced out, as a few rows would otherwise be sorted whatever the indexes: a
    plan without a sort then says an index gives the rows in the page's order."""
    with store.engine.connect() as connection:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        if store.engine.dialect.name == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            return "\n".join(str(row[3]) for row in cursor.fetchall())
        cursor.execute("SET enable_sort = off")
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("EXPLAIN " + statement, parameters)
        return "\n".join(str(row[0]) for row in cursor.fetchall())


@pytest.mark.parametrize(
    ("path", "table", "index"),
    [
        ("/outbox", "email_outbox", "ix_email_outbox_created"),
        ("/outbox?status=sent", "email_outbox", "ix_email_outbox_status_created"),
        (f"/incentives/{BIG}", "rewards", "ix_rewards_incentive_created"),
        (f"/incentives/{BIG}?status=sent", "rewards", "ix_rewards_incentive_status_created"),
        ("/api/v1/incentives/rewards", "rewards", "ix_rewards_created"),
        ("/api/v1/incentives/rewards?status=sent", "rewards", "ix_rewards_status_created"),
        ("/incentives/review-queue", "rewards", "ix_rewards_status_created"),
        ("/api/v1/runs?automation_id=1&status=failed", "runs", "ix_runs_automation_status_created"),
    ],
)
def test_a_page_is_read_off_an_index(
    client: TestClient, seeded: tuple[Seeder, Person], path: str, table: str, index: str
) -> None:
    seeder, person = seeded
    seeder.add(3)
    recorder = Statements()
    with recorder.listening():
        assert client.get(path, headers=person.headers).status_code == 200
    plan = _plan(client.app.state.store, *_list_query(recorder, table))  # type: ignore[attr-defined]
    if seeder.engine.dialect.name == "sqlite":
        # SQLite keeps no statistics here (the hub never runs ANALYZE): its plan is the same
        # for a few rows as for a year's.
        assert index in plan, plan
        if table != "runs":  # runs: the id that breaks ties in created_at is sorted apart
            assert "TEMP B-TREE" not in plan, plan
    elif table != "runs":
        assert "Sort" not in plan, plan  # neither a Sort nor an Incremental Sort node
