"""The product in a real browser: sign in, connect the sandbox, automate, see the run succeed.

Debian's chromium (``/usr/bin/chromium``) through Playwright; the hub, its engine, the sandbox
(the Qualtrics) and an SMTP sink run on loopback ports in this process (``qualflow demo``'s
composition, without its examples).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qualflow.demo.hub import DemoHub

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
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(WAIT_MS)
            page = context.new_page()
            page.on("dialog", lambda dialog: dialog.accept())
            yield page
            page.screenshot(path=str(tmp_path / "last-page.png"), full_page=True)
        finally:
            browser.close()


def test_sign_in_connect_automate_and_watch_the_run_succeed(hub: DemoHub, page: object) -> None:
    expect = sync_api.expect
    assert isinstance(page, sync_api.Page)
    assert hub.sandbox_server is not None
    assert hub.smtp is not None

    # Sign in.
    page.goto(f"{hub.url}/")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=%2F$"))
    page.fill("#f-email", hub.admin_email)
    page.fill("#f-password", hub.admin_password)
    page.click("button:has-text('Sign in')")
    expect(page.get_by_role("heading", name="Welcome, Demo")).to_be_visible()

    # Create a connection against the sandbox on its loopback port.
    page.click("nav >> text=Connections")
    page.click("a:has-text('New connection')")
    page.fill("#f-name", "Sandbox brand")
    page.check("input[name=location][value=base_url]")
    page.fill("#f-base_url", hub.sandbox_server.url)
    page.fill("#f-api_token", hub.qualtrics_token)
    page.click("button:has-text('Validate and save')")
    expect(page.locator(".flash.success")).to_contain_text("Connected: brand “sandbox”")
    expect(page.locator("body")).not_to_contain_text(hub.qualtrics_token)
    expect(page.get_by_test_id("surveys-table")).to_contain_text(hub.survey_id)

    # Create an automation: a response to the survey → fetch it → email the CX team.
    page.click("nav >> text=Automations")
    page.click("a:has-text('New automation')")
    page.fill("#f-name", "Tell the CX team")
    page.select_option("#f-connection_id", label="Sandbox brand")
    expect(page.locator("#survey-options-note")).to_contain_text("visible to “Sandbox brand”")
    expect(page.locator(f"#survey-options option[value='{hub.survey_id}']")).to_have_count(1)
    page.check("input[name=trigger_type][value=survey_response]")
    page.fill("#f-trigger-survey_id", hub.survey_id)
    email_step = page.locator(
        "li.step-edit", has=page.locator("option[selected]", has_text="notify.email")
    )
    email_step.locator("textarea[name$='-config-to']").fill("cx@example.org")
    email_step.locator("input[name$='-config-subject']").fill(
        "New response {{ response.responseId }}"
    )
    email_step.locator("textarea[name$='-config-body']").fill(
        "Recorded {{ values.recordedDate }} with progress {{ values.progress }}%."
    )
    page.click("button:has-text('Create automation')")
    expect(page.locator(".flash.success")).to_contain_text("Automation created")
    page.click("button:has-text('Enable')")
    expect(page.locator(".flash.success")).to_contain_text("Automation enabled")

    # Watch the runs page while a respondent completes the survey (sandbox control endpoint):
    # the run appears and succeeds without reloading the page (live updates).
    page.click("nav >> text=Runs")
    expect(page.get_by_text("No runs yet")).to_be_visible()
    page.evaluate("window.sameDocument = true")  # survives swaps, not a reload
    answer = httpx.post(
        f"{hub.sandbox_server.url}/_sandbox/respond",
        json={"surveyId": hub.survey_id, "count": 1, "seed": 11, "abandonRate": 0},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    succeeded = page.get_by_test_id("runs-table").locator('[data-status="succeeded"]')
    expect(succeeded).to_have_count(1)
    assert page.evaluate("window.sameDocument") is True
    page.click("a.row-link:has-text('Tell the CX team')")
    expect(page.locator("[data-step='get_response'] [data-status='succeeded']")).to_be_visible()
    expect(page.locator("[data-step='email'] [data-status='succeeded']")).to_be_visible()

    # The email went out through the outbox to the SMTP server.
    [message] = hub.smtp.wait_for(1)
    assert message.to == "cx@example.org"
    assert message.subject.startswith("New response R_")
    assert "with progress 100%." in message.text
    page.click("nav >> text=Outbox")
    expect(page.get_by_test_id("outbox-table")).to_contain_text(message.subject)
    expect(page.get_by_test_id("outbox-table").locator('[data-status="sent"]')).to_have_count(1)

    # Started by hand there is no response to fetch: the run fails and says why; replay it.
    page.click("nav >> text=Automations")
    page.click("a.row-link:has-text('Tell the CX team')")
    page.click("button:has-text('Run now')")
    expect(page.locator(".flash.success")).to_contain_text("Run started")
    expect(page.locator("h1 [data-status='failed']")).to_be_visible()  # live, no reload
    expect(page.locator(".flash.error")).to_be_visible()
    page.click("button:has-text('Replay')")
    expect(page.locator(".flash.success")).to_contain_text("Replay started")
    expect(page.locator("h1 [data-status='failed']")).to_be_visible()
    expect(page.get_by_role("heading", name="Attempts")).to_be_visible()
    expect(page.locator("td", has_text=hub.admin_email)).to_have_count(1)

    # The runs list filters in place (htmx) and keeps the filter in the address bar.
    page.click("nav >> text=Runs")
    expect(page.get_by_test_id("runs-table").locator("tbody tr")).to_have_count(2)
    page.select_option("#f-status", "failed")
    expect(page).to_have_url(re.compile(r"/runs\?.*status=failed"))
    expect(page.get_by_test_id("runs-table").locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("runs-table")).to_contain_text("started by")
    page.select_option("#f-status", "cancelled")
    expect(page.get_by_text("No runs match these filters")).to_be_visible()


def test_the_api_reference_renders_without_internet(hub: DemoHub, page: object) -> None:
    """/docs loads Swagger UI from the hub itself: every request leaving loopback fails."""
    expect = sync_api.expect
    assert isinstance(page, sync_api.Page)
    outside: list[str] = []

    def only_loopback(route: object) -> None:
        assert isinstance(route, sync_api.Route)
        if route.request.url.startswith(hub.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    page.goto(f"{hub.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("qualflow")
    # The OpenAPI 3.1 document is understood: operations of each area are listed.
    expect(page.locator(".opblock-tag-section").first).to_be_visible()
    expect(page.get_by_text("List Tango accounts (keys masked)")).to_be_visible()
    assert outside == []
