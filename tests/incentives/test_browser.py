"""Incentives in a real browser: create an incentive (gift codes imported from CSV) and a platform
API key, wire an automation, complete a sandbox response, release the held reward from the
review queue, and see the code arrive by email.

Debian's chromium (``/usr/bin/chromium``) through Playwright; the hub, its engine, the sandbox
and an SMTP sink run on loopback ports in this process (``qualflow demo``'s composition).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from qualflow.connections.models import Connection
from qualflow.demo.hub import DemoHub
from qualflow.incentives.models import Reward

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Upper bound for one UI expectation; a safety net against hangs, not a timing assertion.
WAIT_MS = 60_000
SCREENER = "Research Screener: Mobile Banking Study"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Debian chromium is not installed at /usr/bin/chromium "
        "(scripts/test-prereqs.sh installs it)",
    ),
]

sync_api = pytest.importorskip("playwright.sync_api")
# Assertions wait as long as actions: a loaded CI machine can take seconds to render a swap.
sync_api.expect.set_options(timeout=WAIT_MS)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[DemoHub]:
    demo = DemoHub(data_dir=tmp_path / "hub", port=0, respondent_interval=0, examples=False)
    with demo:
        yield demo


@pytest.fixture
def page(tmp_path: Path) -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            context.set_default_timeout(WAIT_MS)
            page = context.new_page()
            page.on("dialog", lambda dialog: dialog.accept())
            yield page
            page.screenshot(path=str(tmp_path / "last-page.png"), full_page=True)
        finally:
            browser.close()


def held_reward(hub: DemoHub) -> str:
    assert hub.store is not None
    deadline = time.monotonic() + 120
    while True:
        with hub.store.sessionmaker() as session:
            found = session.scalar(select(Reward.reference_id).where(Reward.status == "held"))
        if found:
            return found
        assert time.monotonic() < deadline, "no reward was held"
        time.sleep(0.1)


def test_incentive_key_automation_response_and_release(
    hub: DemoHub, page: object, tmp_path: Path
) -> None:
    expect = sync_api.expect
    assert isinstance(page, sync_api.Page)
    assert hub.sandbox is not None
    assert hub.sandbox_server is not None
    assert hub.smtp is not None
    assert hub.store is not None
    survey = next(s for s in hub.sandbox.surveys.values() if s.name == SCREENER)
    email_qid = next(
        qid
        for qid in survey.ordered_question_ids()
        if getattr(survey.questions[qid], "content_type", None) == "ValidEmail"
    )

    page.goto(f"{hub.url}/")
    page.fill("#f-email", hub.admin_email)
    page.fill("#f-password", hub.admin_password)
    page.click("button:has-text('Sign in')")

    # A pool of gift codes, imported from a CSV file.
    page.click("nav >> text=Incentives")
    page.click("a:has-text('Providers')")
    page.fill("#f-pool-name", "Thank-you cards")
    page.click("button:has-text('Create pool')")
    expect(page.locator(".flash.success")).to_contain_text("Pool “Thank-you cards” created")
    codes = tmp_path / "codes.csv"
    codes.write_text("code,value,currency,expiry\nBROWSER-CODE-0001,10,USD,2099-12-31\n")
    page.set_input_files("input[aria-label='CSV file for Thank-you cards']", str(codes))
    page.click("button:has-text('Import')")
    expect(page.locator(".flash.success")).to_contain_text("Imported 1 code(s)")

    # The incentive: review every reward.
    page.click("a:has-text('Incentives') >> nth=-1")
    page.click("a:has-text('New incentive')")
    page.fill("#f-name", "Screener thank-you")
    page.check("input[name=provider][value=gift_codes]")
    page.select_option("#f-pool", label="Thank-you cards")
    page.fill("#f-amount", "10")
    page.fill("#f-currency", "USD")
    page.fill("#f-reward_name", "gift card")
    page.check("input[name=approval_mode][value=review_all]")
    page.click("button:has-text('Create incentive')")
    expect(page.locator(".flash.success")).to_contain_text("created")
    reference = page.get_by_test_id("incentive-reference").inner_text()
    assert re.fullmatch(r"INC-[A-Z0-9]{6}", reference)
    expect(page.get_by_test_id("review")).to_contain_text("no automation rewards")

    # A platform API key, revealed for copying.
    page.click("a:has-text('Platform API keys')")
    page.fill("#f-platform", "acme-research")
    page.fill("#f-display", "Qualtrics workflow")
    page.click("button:has-text('Create key')")
    expect(page.locator(".flash.success")).to_contain_text("Key “Qualtrics workflow” created")
    page.click("button:has-text('Reveal')")
    expect(page.get_by_test_id("revealed-key")).to_contain_text("acme-research:qfk_")

    # A connection to the sandbox, and an automation rewarding its respondents.
    page.click("nav >> text=Connections")
    page.click("a:has-text('New connection')")
    page.fill("#f-name", "Sandbox brand")
    page.check("input[name=location][value=base_url]")
    page.fill("#f-base_url", hub.sandbox_server.url)
    page.fill("#f-api_token", hub.qualtrics_token)
    page.click("button:has-text('Validate and save')")
    expect(page.locator(".flash.success")).to_contain_text("Connected")
    with hub.store.sessionmaker() as session:
        connection_id = session.scalar(
            select(Connection.id).where(Connection.name == "Sandbox brand")
        )
    definition = {
        "name": "Reward screener respondents",
        "connection_id": connection_id,
        "trigger": {"type": "survey_response", "survey_id": survey.id},
        "steps": [
            {"action": "qualtrics.get_response", "key": "response"},
            {
                "action": "incentives.send_reward",
                "key": "reward",
                "config": {
                    "incentive": reference,
                    "email_source": "question",
                    "email_field": email_qid,
                },
            },
        ],
    }
    page.goto(f"{hub.url}/automations/new?mode=json")
    page.fill("textarea[name=definition]", json.dumps(definition, indent=2))
    page.click("button:has-text('Create automation')")
    expect(page.locator(".flash.success")).to_contain_text("Automation created")
    page.click("button:has-text('Enable')")
    expect(page.locator(".flash.success")).to_contain_text("Automation enabled")

    # A respondent completes the survey; the reward waits in the review queue.
    answer = httpx.post(
        f"{hub.sandbox_server.url}/_sandbox/respond",
        json={"surveyId": survey.id, "count": 1, "seed": 5, "abandonRate": 0, "botRate": 0,
              "duplicateRate": 0},
        timeout=30,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    reward = held_reward(hub)
    page.click("nav >> text=Review queue")
    row = page.get_by_test_id(f"held-{reward}")
    expect(row).to_contain_text("this incentive reviews every reward before paying it")
    row.locator("input[name=reward]").check()
    page.click("button:has-text('Release selected')")
    expect(page.locator(".flash.success")).to_contain_text(f"Released 1 reward(s): {reward}")

    # The code goes out by email; the reward's history shows who released it.
    [message] = hub.smtp.wait_for(1, timeout=60)
    assert "BROWSER-CODE-0001" in message.text
    assert message.subject == "Your reward: 10.00 USD gift card"
    page.goto(f"{hub.url}/incentives/rewards/{reward}")
    expect(page.get_by_test_id("transitions")).to_contain_text(f"released by {hub.admin_email}")
    expect(page.locator(".badge[data-status='sent']")).to_be_visible()

    # The reward links to the run that asked for it.
    page.get_by_test_id("reward-run").click()
    expect(page.locator("h1")).to_contain_text("Reward screener respondents")
    expect(page.locator(".badge[data-status='succeeded']").first).to_be_visible()
    # The step says what became of the reward when the run asked for it.
    expect(page.get_by_test_id("step-summary")).to_contain_text(
        f"{reward} held for review: this incentive reviews every reward before paying it"
    )
