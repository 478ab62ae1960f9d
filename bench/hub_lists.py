"""Benchmark: the lists people open every day, on a database holding a busy year.

A data set is built once per database, with bulk inserts (not through the API): by default
200,000 runs (each with its attempt and two steps, one holding a ~1.5 kB response) of 300
automations (a few of which hold most runs), spread over the past 365 days; 100,000 outbox
emails; 100,000 rewards over 4 incentives (halving in size), a few percent of them held for
review. Then each list is requested through the real app (REST API and pages, signed in as an
admin, in-process: no network) or the real CLI command, and the table shows the median time of
a request and how many SQL statements it sent. A CLI row is the whole command run in-process
(settings, opening the store, the migration check, the query, the table), not the interpreter's
start.

    .venv/bin/python bench/hub_lists.py                          # SQLite and PostgreSQL
    .venv/bin/python bench/hub_lists.py --scale 0.1 --skip-postgres
    .venv/bin/python bench/hub_lists.py --only runs --repeat 9 --sql

``--keep DIR`` keeps the SQLite file and the PostgreSQL database (named in DIR) and measures
them again on the next run instead of building anew (the sizes given then are not used): the
hub's migrations run on them first, so a new index is measured on the same rows (and the time
the upgrade took is printed). PostgreSQL gets ``VACUUM ANALYZE`` after the build, as autovacuum
would have done to a year-old database; SQLite gets nothing, as the hub runs no ``ANALYZE``.
The statement count is the fewest seen over the repeats (background loops of the app, such as
the reward fulfiller, may add a statement to one of them).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

ADMIN = "bench.admin@example.org"
PASSWORD = "correct horse battery staple"
SECRET_KEY = "qYy6l0y3K3n1e8m3kF8Yv3bVbm7C0ePq1hK8Vn0gW2c="  # a fixed Fernet key: --keep reuses it


# -- the data set ------------------------------------------------------------------------------


@dataclass
class Sizes:
    runs: int = 200_000
    emails: int = 100_000
    rewards: int = 100_000
    automations: int = 300
    incentives: int = 4

    def scaled(self, factor: float) -> Sizes:
        return Sizes(
            runs=max(int(self.runs * factor), 100),
            emails=max(int(self.emails * factor), 100),
            rewards=max(int(self.rewards * factor), 100),
            automations=max(int(self.automations * min(factor * 3, 1)), 5),
            incentives=self.incentives,
        )

    def label(self) -> str:
        return (
            f"{self.runs:,} runs, {self.emails:,} emails, {self.rewards:,} rewards, "
            f"{self.automations} automations, {self.incentives} incentives"
        )


@dataclass
class Landmarks:
    """Rows the measured requests point at (found while building, or looked up on reuse)."""

    busy_automation: int = 0
    quiet_automation: int = 0
    run_id: str = ""
    big_incentive: str = ""
    small_incentive: str = ""


def _plain_tables() -> dict[str, Any]:
    """The tables to bulk-insert into, with encrypted columns typed as plain text: the rows are
    given one ciphertext made once, instead of encrypting (and registering) each value."""
    from sqlalchemy import Column, MetaData, Table, Text

    from qualflow.store.base import Base
    from qualflow.store.models_registry import load_all
    from qualflow.store.secrets import EncryptedString

    load_all()
    metadata = MetaData()
    plain = {}
    for name in (
        "automations", "automation_versions", "trigger_endpoints", "runs", "run_steps",
        "run_attempts", "email_outbox", "incentives", "rewards",
    ):  # fmt: skip
        real = Base.metadata.tables[name]
        columns = [
            Column(c.name, Text() if isinstance(c.type, EncryptedString) else c.type)
            for c in real.columns
        ]
        plain[name] = Table(name, metadata, *columns)
    return plain


def _reference(prefix: str, number: int, length: int) -> str:
    """``number`` written in the reference ids' alphabet, e.g. ``RW-22222237``."""
    from qualflow.incentives.ids import ALPHABET

    digits = []
    for _ in range(length):
        number, digit = divmod(number, len(ALPHABET))
        digits.append(ALPHABET[digit])
    return prefix + "".join(reversed(digits))


def incentive_reference(number: int) -> str:
    return _reference("INC-", number, 6)


def _weighted(rng: random.Random, weights: dict[str, float]) -> Callable[[], str]:
    names, cumulative = list(weights), []
    total = 0.0
    for value in weights.values():
        total += value
        cumulative.append(total)

    def pick() -> str:
        x = rng.random() * total
        for name, bound in zip(names, cumulative, strict=True):
            if x < bound:
                return name
        return names[-1]

    return pick


RUN_STATUSES = {"succeeded": 0.905, "failed": 0.04, "skipped": 0.04, "cancelled": 0.015}
EMAIL_STATUSES = {"sent": 0.975, "failed": 0.015, "pending": 0.01}
REWARD_STATUSES = {
    "sent": 0.90, "held": 0.02, "blocked": 0.02, "failed": 0.01, "cancelled": 0.01,
    "approved": 0.02, "ordered": 0.01, "pending": 0.01,
}  # fmt: skip


def _response_output(rng: random.Random, response_id: str, survey_id: str) -> dict[str, Any]:
    """What ``qualtrics.get_response`` keeps of a response: ~1.5 kB of JSON."""
    values = {f"QID{q}": rng.randint(1, 7) for q in range(1, 25)}
    values["QID30_TEXT"] = "It was fine, though the second page took a while to load."
    values["email"] = f"{response_id.lower()}@example.org"
    return {
        "responseId": response_id,
        "surveyId": survey_id,
        "values": values,
        "labels": {f"QID{q}": "Somewhat agree" for q in range(1, 13)},
        "recordedDate": "2026-03-14T09:26:53Z",
        "finished": True,
    }


def build(url: str, sizes: Sizes, *, seed: int = 7) -> Landmarks:
    """Fill a freshly migrated database with a year of history, in batches."""
    from sqlalchemy import insert

    from qualflow.accounts.users import create_user
    from qualflow.store.base import utcnow
    from qualflow.store.db import make_engine, make_sessionmaker
    from qualflow.store.secrets import SecretBox, attach_secret_box

    rng = random.Random(seed)
    tables = _plain_tables()
    engine = make_engine(url)
    box = SecretBox([SECRET_KEY])
    attach_secret_box(engine, box)
    now = utcnow()
    start = now - timedelta(days=365)
    marks = Landmarks()
    body_token = box.encrypt("Hello,\n\nthank you for taking part. " * 8, secret=False)
    delivery_token = box.encrypt(json.dumps({"code": "GIFT-XXXX-YYYY-1234"}), secret=False)

    def batches(rows: Iterator[dict[str, Any]], size: int = 5000) -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch

    def put(name: str, rows: Iterator[dict[str, Any]]) -> None:
        with engine.begin() as connection:
            for batch in batches(rows):
                connection.execute(insert(tables[name]), batch)

    # Automations: a few hold most runs (a weight of 1/rank), as a real hub's do.
    automation_ids = list(range(1, sizes.automations + 1))

    def automations() -> Iterator[dict[str, Any]]:
        for a in automation_ids:
            yield {
                "id": a, "name": f"Automation {a:04d}", "connection_id": None,
                "trigger_type": "survey_response", "version": 1 + a % 3, "enabled": a % 5 != 0,
                "created_at": start, "updated_at": start, "created_by": ADMIN,
            }  # fmt: skip

    def versions() -> Iterator[dict[str, Any]]:
        for a in automation_ids:
            for version in range(1, 2 + a % 3):
                reward = a % 4 == 0
                last = (
                    {"action": "incentives.send_reward", "key": "reward",
                     "config": {"incentive": incentive_reference(1), "email_field": "QID2"}}
                    if reward
                    else {"action": "notify.email", "key": "mail",
                          "config": {"to": ["team@example.org"], "subject": "New response",
                                     "body": "{{ response.values.QID30_TEXT }}"}}
                )  # fmt: skip
                yield {
                    "automation_id": a, "version": version, "created_at": start,
                    "created_by": ADMIN,
                    "definition": {
                        "name": f"Automation {a:04d}", "description": "Bench automation",
                        "connection_id": None,
                        "trigger": {"type": "survey_response", "survey_id": f"SV_{a:015d}"},
                        "steps": [{"action": "qualtrics.get_response", "key": "response"}, last],
                    },
                }  # fmt: skip

    put("automations", automations())
    put("automation_versions", versions())
    weights = [1 / rank for rank in automation_ids]
    marks.busy_automation, marks.quiet_automation = automation_ids[0], automation_ids[-1]

    # Runs in the order they were created, spread over the year; a few still queued or running.
    run_status = _weighted(rng, RUN_STATUSES)
    owners = rng.choices(automation_ids, weights=weights, k=sizes.runs)
    step = timedelta(days=365) / sizes.runs
    run_ids: list[str] = []

    def runs_and_children() -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], dict]]:
        for n in range(sizes.runs):
            a = owners[n]
            created = start + step * n + timedelta(seconds=rng.random())
            status = run_status()
            if n >= sizes.runs - 40:
                status = "queued" if n % 2 else "running"
            response_id = f"R_{n:015d}"
            survey_id = f"SV_{a:015d}"
            run_id = f"{a}:{response_id}"
            run_ids.append(run_id)
            started = created + timedelta(milliseconds=rng.randint(20, 400))
            finished = (
                None if status in ("queued", "running")
                else started + timedelta(milliseconds=rng.randint(150, 3000))
            )  # fmt: skip
            error = "step 2 (mail): SMTP 451 try again later" if status == "failed" else None
            run = {
                "id": run_id, "automation_id": a, "automation_version": 1 + a % 3,
                "trigger_type": "survey_response",
                "trigger_summary": f"completed response {response_id} to {survey_id}",
                "trigger_payload": {
                    "type": "survey_response", "survey_id": survey_id,
                    "response_id": response_id, "kind": "completed",
                    "recorded_at": created.isoformat(), "recipient_id": None,
                    "source": "webhook",
                    "summary": f"completed response {response_id} to {survey_id}",
                },
                "status": status, "error": error, "attempt": 1, "workflow_id": run_id,
                "created_at": created,
                "started_at": None if status == "queued" else started,
                "finished_at": finished,
            }  # fmt: skip
            steps = []
            if status not in ("queued",):
                steps.append({
                    "run_id": run_id, "position": 0, "key": "response",
                    "action": "qualtrics.get_response", "status": "succeeded", "run_attempt": 1,
                    "input_summary": {}, "output": _response_output(rng, response_id, survey_id),
                    "error": None, "attempts": 1, "checkpoint": None,
                    "started_at": started, "finished_at": started + timedelta(milliseconds=90),
                })  # fmt: skip
                second = {
                    "succeeded": "succeeded", "failed": "failed", "skipped": "skipped",
                    "cancelled": "stopped", "running": "running",
                }[status]  # fmt: skip
                steps.append({
                    "run_id": run_id, "position": 1, "key": "mail", "action": "notify.email",
                    "status": second, "run_attempt": 1,
                    "input_summary": {"to": ["team@example.org"], "subject": "New response"},
                    "output": {"outbox_id": n + 1, "status": "sent"}
                    if second == "succeeded" else None,
                    "error": error, "attempts": 3 if second == "failed" else 1,
                    "checkpoint": None, "started_at": started + timedelta(milliseconds=95),
                    "finished_at": finished,
                })  # fmt: skip
            attempt = {
                "run_id": run_id, "number": 1, "workflow_id": run_id,
                "status": status if status != "queued" else "running", "error": error,
                "from_position": 0, "requested_by": None, "started_at": started,
                "finished_at": finished,
            }  # fmt: skip
            yield run, steps, attempt

    with engine.begin() as connection:
        runs: list[dict[str, Any]] = []
        steps: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        for run, run_steps, attempt in runs_and_children():
            runs.append(run)
            steps.extend(run_steps)
            attempts.append(attempt)
            if len(runs) == 5000:
                connection.execute(insert(tables["runs"]), runs)
                connection.execute(insert(tables["run_steps"]), steps)
                connection.execute(insert(tables["run_attempts"]), attempts)
                runs, steps, attempts = [], [], []
        if runs:
            connection.execute(insert(tables["runs"]), runs)
            connection.execute(insert(tables["run_steps"]), steps)
            connection.execute(insert(tables["run_attempts"]), attempts)
    marks.run_id = run_ids[len(run_ids) // 2]

    # The outbox: one email per run of the newest runs, most of them sent.
    email_status = _weighted(rng, EMAIL_STATUSES)
    email_step = timedelta(days=365) / sizes.emails

    def emails() -> Iterator[dict[str, Any]]:
        for n in range(sizes.emails):
            created = start + email_step * n
            status = email_status()
            run_id = run_ids[n * len(run_ids) // sizes.emails]
            yield {
                "id": n + 1, "idempotency_key": f"{run_id}/mail", "run_id": run_id,
                "sender": "hub@example.org", "recipients": [f"person{n % 977}@example.org"],
                "subject": f"Thank you for your response ({n})", "body_text": body_token,
                "body_html": None, "status": status,
                "attempts": 3 if status == "failed" else (0 if status == "pending" else 1),
                "last_error": "SMTP 550 mailbox unavailable" if status == "failed" else None,
                "message_id": f"<{n}.bench@example.org>" if status == "sent" else None,
                "headers": {"to": [f"person{n % 977}@example.org"]},
                "created_at": created, "next_attempt_at": created,
                "sent_at": created + timedelta(seconds=1) if status == "sent" else None,
            }  # fmt: skip

    put("email_outbox", emails())

    # Incentives and their rewards: a few incentives, the first holding most rewards.
    incentive_ids = list(range(1, sizes.incentives + 1))
    references = {i: incentive_reference(i) for i in incentive_ids}
    marks.big_incentive, marks.small_incentive = references[1], references[incentive_ids[-1]]

    def incentives() -> Iterator[dict[str, Any]]:
        for i in incentive_ids:
            yield {
                "id": i, "reference_id": references[i], "name": f"Panel incentive {i}",
                "description": "", "active": True, "provider": "manual", "utid": None,
                "amount_minor": 1000, "currency": "USD", "reward_name": "Gift card",
                "email_subject": "Your reward", "email_body": "Thank you, {{ first_name }}.",
                "redemption_instructions": "", "max_rewards": None, "budget_minor": None,
                "opens_at": None, "closes_at": None, "approval_mode": "review_suspicious",
                "fraud_rules": {}, "low_stock_threshold": 10, "alert_emails": None,
                "stock_alert": None, "committed_count": 0, "committed_minor": 0,
                "created_at": start, "updated_at": start, "created_by": ADMIN,
            }  # fmt: skip

    put("incentives", incentives())
    reward_status = _weighted(rng, REWARD_STATUSES)
    shares = rng.choices(incentive_ids, weights=[2**-i for i in incentive_ids], k=sizes.rewards)
    reward_step = timedelta(days=365) / sizes.rewards

    def rewards() -> Iterator[dict[str, Any]]:
        for n in range(sizes.rewards):
            created = start + reward_step * n
            status = reward_status()
            email = f"respondent{n:07d}@example.org"
            run_id = run_ids[n * len(run_ids) // sizes.rewards]
            sent = status == "sent"
            yield {
                "id": n + 1, "reference_id": _reference("RW-", n, 8), "incentive_id": shares[n],
                "status": status, "email": email, "email_normalized": email,
                "first_name": "Alex", "response_id": f"R_{n:015d}", "survey_id": "SV_1",
                "participant_id": None, "ip_address": "203.0.113.9", "source": "automation",
                "requested_by": f"run:{run_id}", "run_id": run_id, "amount_minor": 1000,
                "currency": "USD", "provider": "manual",
                "reasons": ["reCAPTCHA score 0.2 is below 0.5"]
                if status in ("held", "blocked") else [],
                "warnings": [], "counted": status not in ("blocked", "cancelled"),
                "external_ref_id": None, "provider_order_id": None,
                "delivery": delivery_token if sent else None,
                "delivery_hint": "code ending 1234" if sent else None,
                "email_outbox_id": n + 1 if sent else None, "resend_count": 0,
                "attempts": 1 if sent else 0,
                "last_error": "provider refused the order" if status == "failed" else None,
                # None: nothing is due, so the app's reward fulfiller stays idle (and the rows
                # stay as built) while the lists are measured.
                "next_attempt_at": None,
                "lease_owner": None, "lease_until": None, "created_at": created,
                "updated_at": created, "ordered_at": created if sent else None,
                "sent_at": created if sent else None, "paid_at": None,
            }  # fmt: skip

    put("rewards", rewards())

    with make_sessionmaker(engine)() as session:
        create_user(session, email=ADMIN, name="Bench", role="admin", password=PASSWORD)
        session.commit()
    _reset_sequences(engine, ["automations", "email_outbox", "incentives", "rewards"])
    engine.dispose()
    return marks


def _reset_sequences(engine: Any, tables: list[str]) -> None:
    """Rows inserted with explicit ids leave PostgreSQL's sequences at 1: move them past."""
    from sqlalchemy import text

    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as connection:
        for table in tables:
            connection.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            )


def settle(url: str) -> None:
    """What a year-old PostgreSQL has had done by autovacuum: statistics and a visibility map.
    (SQLite gets nothing: the hub never runs ANALYZE there.)"""
    from sqlalchemy import create_engine, text

    from qualflow.store.db import normalize_url

    if not url.startswith("postgres"):
        return
    engine = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def find_landmarks(url: str) -> Landmarks:
    """The same rows :func:`build` picked, in a database it built earlier."""
    from sqlalchemy import create_engine, func, select

    from qualflow.engine.models import Run
    from qualflow.incentives.models import Incentive
    from qualflow.store.db import normalize_url

    engine = create_engine(normalize_url(url))
    with engine.connect() as connection:
        ids = connection.execute(select(func.min(Run.automation_id), func.max(Run.automation_id)))
        busy, quiet = ids.one()
        total = connection.scalar(select(func.count()).select_from(Run)) or 0
        middle = connection.scalar(
            select(Run.id).order_by(Run.created_at, Run.id).offset(total // 2).limit(1)
        )
        refs = connection.scalars(select(Incentive.reference_id).order_by(Incentive.id)).all()
    engine.dispose()
    return Landmarks(int(busy), int(quiet), str(middle), refs[0], refs[-1])


def row_counts(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    from qualflow.store.db import normalize_url

    engine = create_engine(normalize_url(url))
    with engine.connect() as connection:
        counts = {
            name: int(connection.scalar(text(f"SELECT count(*) FROM {name}")) or 0)
            for name in ("runs", "run_steps", "email_outbox", "rewards", "automations")
        }
    engine.dispose()
    return counts


# -- measuring ---------------------------------------------------------------------------------


class Statements:
    """Counts (and with ``keep``, records) the SQL statements every engine of this process sends."""

    def __init__(self) -> None:
        self.count = 0
        self.keep = False
        self.seen: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        with self._lock:
            self.count += 1
            if self.keep:
                self.seen.append(" ".join(statement.split()))

    @contextmanager
    def listening(self) -> Iterator[None]:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        event.listen(Engine, "before_cursor_execute", self)
        try:
            yield
        finally:
            event.remove(Engine, "before_cursor_execute", self)


@dataclass
class Measured:
    name: str
    ms: float
    statements: int
    sql: list[str] = field(default_factory=list)


@dataclass
class Case:
    name: str
    run: Callable[[], Any]
    #: What a successful answer looks like (checked on every request).
    check: Callable[[Any], bool] = lambda answer: answer.status_code == 200


def time_case(case: Case, counter: Statements, repeat: int, keep_sql: bool) -> Measured:
    answer = case.run()  # warm: templates compiled, statements cached, pages in memory
    if not case.check(answer):
        detail = getattr(answer, "text", getattr(answer, "output", answer))
        raise RuntimeError(f"{case.name}: unexpected answer {str(detail)[:400]}")
    times, counts = [], []
    sql: list[str] = []
    for attempt in range(repeat):
        counter.keep = keep_sql and attempt == 0
        before = counter.count
        counter.seen = []
        started = time.perf_counter()
        answer = case.run()
        times.append(time.perf_counter() - started)
        counts.append(counter.count - before)
        if counter.keep:
            sql = list(counter.seen)
        counter.keep = False
        if not case.check(answer):
            raise RuntimeError(f"{case.name}: unexpected answer on repeat {attempt}")
    return Measured(case.name, statistics.median(times) * 1000, min(counts), sql)


def cases(client: Any, cli: Callable[..., Any], marks: Landmarks) -> list[Case]:
    from qualflow.store.base import utcnow

    week_ago = (utcnow() - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S")
    api = "/api/v1"

    def get(path: str) -> Callable[[], Any]:
        return lambda: client.get(path)

    def csv_rows(answer: Any) -> bool:
        return answer.status_code == 200 and answer.text.count("\n") > 1

    def cli_ok(result: Any) -> bool:
        return result.exit_code == 0

    busy, quiet = marks.busy_automation, marks.quiet_automation
    big, small = marks.big_incentive, marks.small_incentive
    return [
        Case("API runs, newest 50", get(f"{api}/runs")),
        Case("API runs, status=failed", get(f"{api}/runs?status=failed")),
        Case("API runs, busiest automation", get(f"{api}/runs?automation_id={busy}")),
        Case("API runs, quietest automation", get(f"{api}/runs?automation_id={quiet}")),
        Case(
            "API runs, automation + failed",
            get(f"{api}/runs?automation_id={busy}&status=failed"),
        ),
        Case("API runs, since 7 days", get(f"{api}/runs?since={week_ago}")),
        Case("API runs, offset 10,000", get(f"{api}/runs?offset=10000")),
        Case("UI /runs", get("/runs")),
        Case("UI /runs, failed, 7 days", get("/runs?status=failed&window=7d")),
        Case("UI /runs, page 400", get("/runs?page=400")),
        Case("CLI runs ls", lambda: cli("runs", "ls"), cli_ok),
        Case(
            "CLI runs ls --status failed", lambda: cli("runs", "ls", "--status", "failed"), cli_ok
        ),
        Case("API run detail", get(f"{api}/runs/{marks.run_id}")),
        Case("UI run detail", get(f"/runs/{marks.run_id}")),
        Case("UI /outbox", get("/outbox")),
        Case("UI /outbox, failed", get("/outbox?status=failed")),
        Case("UI /outbox, page 500", get("/outbox?page=500")),
        Case("UI /automations", get("/automations")),
        Case("API automations", get(f"{api}/automations")),
        Case("UI /incentives", get("/incentives")),
        Case(f"UI incentive {big} (largest)", get(f"/incentives/{big}")),
        Case(f"UI incentive {big}, status=sent", get(f"/incentives/{big}?status=sent")),
        Case(f"UI incentive {big}, page 100", get(f"/incentives/{big}?page=100")),
        Case(f"UI incentive {small} (smallest)", get(f"/incentives/{small}")),
        Case("UI review queue", get("/incentives/review-queue")),
        Case("API rewards, newest 50", get(f"{api}/incentives/rewards")),
        Case("API rewards, status=sent", get(f"{api}/incentives/rewards?status=sent")),
        Case("API rewards, status=held", get(f"{api}/incentives/rewards?status=held")),
        Case(f"API {big} rewards", get(f"{api}/incentives/{big}/rewards")),
        Case(f"API {big} rewards.csv", get(f"{api}/incentives/{big}/rewards.csv"), csv_rows),
        Case(
            f"API {big} rewards.csv, held",
            get(f"{api}/incentives/{big}/rewards.csv?status=held"),
            csv_rows,
        ),
    ]


def measure(
    url: str, marks: Landmarks, workdir: Path, repeat: int, only: list[str], keep_sql: bool
) -> list[Measured]:
    from fastapi.testclient import TestClient
    from pydantic import SecretStr
    from typer.testing import CliRunner

    from qualflow.cli import app as cli_app
    from qualflow.settings import Settings
    from qualflow.web.app import create_app

    data_dir = workdir / f"data-{uuid.uuid4().hex[:6]}"
    settings = Settings(
        data_dir=data_dir, database_url=url, secret_keys=[SecretStr(SECRET_KEY)],
        auto_migrate=False,
    )  # fmt: skip
    env = {
        "QUALFLOW_DATABASE_URL": url,
        "QUALFLOW_SECRET_KEYS": SECRET_KEY,
        "QUALFLOW_DATA_DIR": str(data_dir),
        "QUALFLOW_AUTO_MIGRATE": "false",
    }
    runner = CliRunner()

    def cli(*args: str) -> Any:
        return runner.invoke(cli_app, list(args), env=env, catch_exceptions=False)

    counter = Statements()
    results = []
    with TestClient(create_app(settings, engine="off")) as client:
        page = client.get("/sign-in")
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        signed = client.post(
            "/sign-in",
            data={"email": ADMIN, "password": PASSWORD, "next": "/", "csrf_token": token},
            follow_redirects=False,
        )
        assert signed.status_code == 303, signed.text[:300]
        with counter.listening():
            for case in cases(client, cli, marks):
                if only and not any(word.lower() in case.name.lower() for word in only):
                    continue
                results.append(time_case(case, counter, repeat, keep_sql))
    return results


# -- databases ---------------------------------------------------------------------------------


@contextmanager
def database(kind: str, workdir: Path, keep: Path | None) -> Iterator[tuple[str, bool]]:
    """A database URL, and whether it already holds the data set (``--keep`` on a later run)."""
    if kind == "sqlite":
        if keep is not None:
            path = keep / "hub_lists.db"
            yield f"sqlite:///{path}", path.exists()
            return
        yield f"sqlite:///{workdir / 'hub_lists.db'}", False
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = os.environ.get("QUALFLOW_TEST_PG_URL", "postgresql://127.0.0.1:5432/test")
    driver = "postgresql+psycopg://" + server.split("://", 1)[1]
    admin = create_engine(driver, isolation_level="AUTOCOMMIT")
    name_file = keep / "postgres-database" if keep is not None else None
    existing = name_file.read_text().strip() if name_file and name_file.exists() else None
    name = existing or f"qf_bench_lists_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        there = connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if not there:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
            existing = None
    if name_file is not None:
        name_file.write_text(name + "\n")
    try:
        yield (
            make_url(server).set(database=name).render_as_string(hide_password=False),
            bool(existing),
        )
    finally:
        if name_file is None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def prepare(url: str, ready: bool, sizes: Sizes, console: Console) -> Landmarks:
    from qualflow.store.migrate import current_revision, head_revision, migrate

    if ready:
        was = current_revision(url)
        started = time.perf_counter()
        migrate(url)
        if was != head_revision():
            console.print(
                f"  migrated the kept database {was} → {head_revision()} in "
                f"{time.perf_counter() - started:.1f} s"
            )
        settle(url)
        return find_landmarks(url)
    migrate(url)
    started = time.perf_counter()
    marks = build(url, sizes)
    built = time.perf_counter() - started
    started = time.perf_counter()
    settle(url)
    console.print(
        f"  built in {built:.1f} s"
        + (f", VACUUM ANALYZE {time.perf_counter() - started:.1f} s" if "postgres" in url else "")
    )
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=Sizes.runs)
    parser.add_argument("--emails", type=int, default=Sizes.emails)
    parser.add_argument("--rewards", type=int, default=Sizes.rewards)
    parser.add_argument("--automations", type=int, default=Sizes.automations)
    parser.add_argument("--incentives", type=int, default=Sizes.incentives)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="Multiply the sizes (0.1: a tenth of a year)."
    )
    parser.add_argument("--repeat", type=int, default=7, help="Timed requests per list.")
    parser.add_argument("--only", action="append", default=[], help="Lists whose name has this.")
    parser.add_argument("--sql", action="store_true", help="Print each list's statements.")
    parser.add_argument("--keep", type=Path, help="Keep (and reuse) the databases in this folder.")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    sizes = Sizes(args.runs, args.emails, args.rewards, args.automations, args.incentives)
    if args.scale != 1.0:
        sizes = sizes.scaled(args.scale)
    kinds = [k for k in ("sqlite", "postgres") if not getattr(args, f"skip_{k}")]
    console = Console()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[Measured]] = {}
    counts: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for kind in kinds:
            with database(kind, workdir, args.keep) as (url, ready):
                console.print(f"{kind}: {'reusing the kept data set' if ready else 'building'}")
                marks = prepare(url, ready, sizes, console)
                counts[kind] = row_counts(url)
                results[kind] = measure(url, marks, workdir, args.repeat, args.only, args.sql)
    first = next(iter(counts.values()), {})
    shown = ", ".join(f"{v:,} {k}" for k, v in first.items())
    table = Table(title=f"Lists at a year's scale ({shown}): median of {args.repeat} requests")
    table.add_column("list")
    for kind in kinds:
        table.add_column(f"{kind} ms", justify="right")
        table.add_column("stmts", justify="right")
    names = [m.name for m in next(iter(results.values()), [])]
    for position, name in enumerate(names):
        row = [name]
        for kind in kinds:
            measured = results[kind][position]
            row += [f"{measured.ms:,.1f}", str(measured.statements)]
        table.add_row(*row)
    console.print(table)
    if args.sql:
        for kind in kinds:
            for measured in results[kind]:
                console.print(f"\n[bold]{kind}: {measured.name}[/bold]")
                for statement in measured.sql:
                    console.print("  " + statement[:400], markup=False, highlight=False)


if __name__ == "__main__":
    main()
