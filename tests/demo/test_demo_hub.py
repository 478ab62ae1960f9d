"""`qualflow demo --duration`: the whole product in one process produces runs and emails."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import time
from email import message_from_bytes
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.demo.hub import DEMO_TANGO_BALANCE, DemoHub
from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.models import Incentive
from qualflow.incentives.schemas import IncentiveSpec


@pytest.mark.slow
def test_bounded_demo_turns_respondents_into_runs_and_emails(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["demo", "--data-dir", str(tmp_path), "--port", "0", "--every", "0.3", "--duration", "8"],
    )

    assert result.exit_code == 0, result.output
    assert re.search(r"Sign in admin@qualflow\.demo\s+/\s+[a-z0-9-]{19}", result.output)
    summary = re.search(
        r"Stopped\. (\d+) responses? → (\d+) runs? \((.*)\), (\d+) emails? received, "
        r"(\d+) rewards? \((.*)\)\.",
        result.output,
    )
    assert summary, result.output
    responses, runs, emails, rewards = (int(summary[n]) for n in (1, 2, 4, 5))
    assert responses > 0
    assert 0 < runs <= responses  # abandoned responses start no run
    assert "succeeded" in summary[3]
    assert "failed" not in summary[3]
    assert emails > 0
    # Screener respondents (every other respondent) are rewarded with a demo gift code.
    assert rewards > 0
    assert "sent" in summary[6]
    # Every email the SMTP sink received is on disk, and carries the response's data.
    mail = [
        message_from_bytes(path.read_bytes()) for path in (tmp_path / "demo-mail").glob("*.eml")
    ]
    assert len(mail) == emails
    follow_ups = [m for m in mail if m["To"] == "cx-team@example.org"]
    assert follow_ups
    assert str(follow_ups[0]["Subject"]).startswith("Follow up: NPS ")
    body = follow_ups[0].get_payload(decode=True)
    assert isinstance(body, bytes)
    assert re.search(r"Response: R_\w+", body.decode())
    reward_mails = [m for m in mail if str(m["Subject"]).startswith("Your reward:")]
    assert reward_mails
    text = reward_mails[0].get_payload(decode=True)
    assert isinstance(text, bytes)
    assert re.search(r"Gift code: DEMO-\w+-\d{4}", text.decode())


@pytest.mark.slow
def test_a_terminated_demo_stops_as_ctrl_c_does(tmp_path: Path) -> None:
    """SIGTERM (docker stop, systemd, kill) drains the runs, saves the sandbox and prints the
    summary, like Ctrl-C, instead of dying mid-run."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "qualflow", "demo", "--data-dir", str(tmp_path),
         "--port", "0", "--every", "0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert demo.stdout is not None
    lines: list[str] = []
    for line in demo.stdout:
        lines.append(line)
        if re.search(r"responses [1-9]\d* ", line):  # respondents are answering
            break
    demo.send_signal(signal.SIGTERM)
    output, _ = demo.communicate(timeout=120)
    output = "".join(lines) + output
    assert demo.returncode == 0, output
    assert "Stopping…" in output
    assert re.search(r"Stopped\. \d+ responses? → \d+ runs?", output), output
    assert (tmp_path / "demo-sandbox.json").exists()


def test_demo_refuses_a_port_that_is_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app, ["demo", "--data-dir", str(tmp_path), "--port", str(port), "--duration", "1"]
        )

    assert result.exit_code == 1
    assert f"(--port {port} is taken; 0 picks a free one)" in " ".join(result.output.split())


def test_demo_names_the_sandbox_port_when_that_one_is_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app,
            ["demo", "--data-dir", str(tmp_path), "--sandbox-port", str(port), "--duration", "1"],
        )

    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert f"(--sandbox-port {port} is taken; 0 picks a free one)" in said


@pytest.fixture
def _no_handlers_on_closed_streams() -> None:
    """DBOS logs to the stderr it first saw and flushes it when started again; under
    CliRunner (an earlier test) that was a captured stream, closed since."""
    for name in ("dbos", "qualflow", ""):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if getattr(getattr(handler, "stream", None), "closed", False):
                logger.removeHandler(handler)


@pytest.mark.slow
@pytest.mark.usefixtures("_no_handlers_on_closed_streams")
def test_a_restarted_demo_brings_new_screener_respondents_who_get_rewarded(
    tmp_path: Path,
) -> None:
    """The sandbox is kept across starts; its respondents must not be the same people again,
    who would all be skipped as already rewarded."""
    orders: list[str] = []
    for _start in range(2):
        with DemoHub(data_dir=tmp_path, port=0, respondent_interval=0) as hub:
            assert hub.incentive_reference.startswith("INC-")
            hub.respond(3, complete=True, survey_id=hub.screener_id)
            deadline = time.monotonic() + 30
            while True:
                status = hub.status()
                finished = status.runs_total - status.runs.get("queued", 0)
                finished -= status.runs.get("running", 0)
                if finished >= 3 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert finished == 3, status
            assert sum(status.rewards.values()) >= 1, status
            _the_sandbox_tango_account_pays(hub, first_start=_start == 0)
            _tango_orders_outlive_the_restart(hub, orders)


def _the_sandbox_tango_account_pays(hub: DemoHub, *, first_start: bool) -> None:
    """The seeded Tango account reaches the sandbox's Tango double, after a restart too (the
    double's port and state are new on every start)."""
    assert hub.store is not None
    manager = IncentiveManager(hub.store.sessionmaker)
    items = asyncio.run(manager.tango_catalog(hub.tango_account_id))
    assert any(item.utid == "U442382" and item.value == "10.00 USD" for item in items)
    if first_start:
        spec = IncentiveSpec(
            name="Tango thank-you", provider="tango", tango_account_id=hub.tango_account_id,
            utid="U442382", currency="USD",
        )  # fmt: skip
        asyncio.run(manager.create(spec, actor="test"))
    with hub.store.sessionmaker() as db:
        incentive = db.scalar(select(Incentive).where(Incentive.name == "Tango thank-you"))
    assert incentive is not None
    health = asyncio.run(manager.health(incentive))
    assert health.ok, health
    assert health.key_status == "accepted"


def _tango_orders_outlive_the_restart(hub: DemoHub, orders: list[str]) -> None:
    """The Tango double is kept in the sandbox's file: an order placed before a restart is
    found after it, and the account's balance still shows what it paid."""
    assert hub.store is not None
    assert hub.sandbox_server is not None
    manager = IncentiveManager(hub.store.sessionmaker)
    account = next(a for a in manager.tango_accounts() if a.id == hub.tango_account_id)
    auth = (account.platform_name, account.platform_key)
    base = hub.sandbox_server.url + "/raas/v2"
    if not orders:
        placed = httpx.post(
            base + "/orders", auth=auth, timeout=10,
            json={"customerIdentifier": account.customer_id, "utid": "U561593",
                  "accountIdentifier": account.account_id, "amount": 7, "sendEmail": False},
        )  # fmt: skip
        assert placed.status_code == 201, placed.text
        orders.append(placed.json()["referenceOrderID"])
        return
    found = httpx.get(f"{base}/orders/{orders[0]}", auth=auth, timeout=10)
    assert found.status_code == 200, found.text
    balance = httpx.get(f"{base}/accounts/{account.account_id}", auth=auth, timeout=10)
    assert balance.json()["currentBalance"] == float(DEMO_TANGO_BALANCE) - 7
