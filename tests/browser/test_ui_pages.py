"""The UI over HTTP: sign-in, permissions, CSRF, the automation editor, runs and the outbox."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from qualflow.engine.models import Automation, AutomationVersion, Run, RunStep
from qualflow.notify.models import OutboxEmail
from qualflow.settings import Settings
from qualflow.store.base import utcnow
from qualflow.store.runtime import open_store
from qualflow.store.sealed import unseal
from qualflow.store.secrets import secret_box_for
from tests.browser.ui_support import PASSWORD, csrf_token, email_of, sign_in


def _store_session(settings: Settings) -> Session:
    store = open_store(settings)
    session = store.sessionmaker()
    session.info["store"] = store
    return session


def _close(session: Session) -> None:
    session.close()
    session.info["store"].close()


def _automation_form(token: str, **overrides: str) -> list[tuple[str, str]]:
    fields = {
        "csrf_token": token,
        "name": "Nightly check",
        "description": "",
        "connection_id": "",
        "trigger_type": "schedule",
        "trigger-cron": "0 3 * * *",
        "trigger-timezone": "",
        "step": "sabc1",
        "step-sabc1-action": "condition",
        "step-sabc1-key": "",
        "step-sabc1-config-expression": "1 + 1 == 2",
        "step-sabc1-config-reason": "",
    }
    fields.update(overrides)
    return list(fields.items())


def _create_automation(client: TestClient, **overrides: str) -> int:
    token = csrf_token(client, "/automations/new")
    answer = client.post("/automations/new", data=dict(_automation_form(token, **overrides)))
    assert answer.status_code == 303, answer.text
    match = re.fullmatch(r"/automations/(\d+)", answer.headers["location"])
    assert match
    return int(match.group(1))


# -- sign-in ----------------------------------------------------------------------------------


def test_pages_send_anonymous_visitors_to_sign_in_and_back(ui_client: TestClient) -> None:
    answer = ui_client.get("/runs?status=failed")

    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in?next=%2Fruns%3Fstatus%3Dfailed"
    page = ui_client.get(answer.headers["location"])
    token = csrf_token(ui_client)
    assert 'value="/runs?status=failed"' in page.text
    signed = ui_client.post(
        "/sign-in",
        data={
            "email": email_of("viewer"),
            "password": PASSWORD,
            "next": "/runs?status=failed",
            "csrf_token": token,
        },
    )
    assert signed.status_code == 303
    assert signed.headers["location"] == "/runs?status=failed"
    assert ui_client.get("/runs?status=failed").status_code == 200


def test_sign_in_explains_what_is_wrong(ui_client: TestClient) -> None:
    token = csrf_token(ui_client)

    empty = ui_client.post("/sign-in", data={"email": "", "password": "", "csrf_token": token})
    wrong = ui_client.post(
        "/sign-in",
        data={"email": email_of("admin"), "password": "not it", "csrf_token": token},
    )

    assert empty.status_code == 400
    assert "Enter your email address." in empty.text
    assert "Enter your password." in empty.text
    assert wrong.status_code == 400
    assert "Email or password is wrong." in wrong.text
    assert f'value="{email_of("admin")}"' in wrong.text  # the email is kept, the password not
    assert "not it" not in wrong.text
    assert ui_client.get("/").status_code == 303


def test_sign_in_never_redirects_off_site(ui_client: TestClient) -> None:
    token = csrf_token(ui_client)
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        answer = ui_client.post(
            "/sign-in",
            data={
                "email": email_of("admin"),
                "password": PASSWORD,
                "next": target,
                "csrf_token": token,
            },
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/"


def test_forms_without_the_csrf_token_are_refused(ui_client: TestClient) -> None:
    sign_in(ui_client, "admin")

    answer = ui_client.post("/automations/new", data=dict(_automation_form("forged")))

    assert answer.status_code == 403
    assert "This form has expired" in answer.text
    assert ui_client.get("/automations").text.count('data-automation="') == 0


def test_sign_out_ends_the_session(ui_client: TestClient) -> None:
    sign_in(ui_client, "member")
    session_cookie = ui_client.cookies.get("qualflow_session")
    assert session_cookie

    answer = ui_client.post("/sign-out", data={"csrf_token": csrf_token(ui_client, "/")})

    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in"
    assert "You are signed out." in ui_client.get("/sign-in").text
    ui_client.cookies.set("qualflow_session", session_cookie)  # a stolen copy is worthless now
    assert ui_client.get("/").status_code == 303


# -- permissions ------------------------------------------------------------------------------


def test_a_viewer_gets_a_page_naming_the_missing_permission(ui_client: TestClient) -> None:
    sign_in(ui_client, "viewer")

    listing = ui_client.get("/automations")
    editor = ui_client.get("/automations/new")
    posted = ui_client.post(
        "/automations/new", data=dict(_automation_form(csrf_token(ui_client, "/")))
    )

    assert listing.status_code == 200
    assert "New automation" not in listing.text
    for answer in (editor, posted):
        assert answer.status_code == 403
        assert "requires Manage permission on automations" in answer.text
        assert "Sign out" in answer.text  # shown inside the normal layout


def test_a_viewer_cannot_replay_or_cancel_runs(
    ui_client: TestClient, ui_settings: Settings
) -> None:
    sign_in(ui_client, "admin")
    automation_id = _create_automation(ui_client)
    db = _store_session(ui_settings)
    try:
        db.add(
            Run(
                id=f"{automation_id}:manual:x",
                automation_id=automation_id,
                automation_version=1,
                trigger_type="manual",
                trigger_summary="by hand",
                trigger_payload={},
                status="failed",
                error="boom",
                workflow_id=f"{automation_id}:manual:x",
            )
        )
        db.commit()
    finally:
        _close(db)
    ui_client.post("/sign-out", data={"csrf_token": csrf_token(ui_client, "/")})
    sign_in(ui_client, "viewer")

    page = ui_client.get(f"/runs/{automation_id}:manual:x")
    answer = ui_client.post(
        f"/runs/{automation_id}:manual:x/replay", data={"csrf_token": csrf_token(ui_client, "/")}
    )

    assert page.status_code == 200
    assert "boom" in page.text
    assert "Replay" not in page.text
    assert answer.status_code == 403
    assert "requires Manage permission on runs" in answer.text


# -- automation editor ------------------------------------------------------------------------


def test_the_editor_shows_errors_next_to_the_fields(ui_client: TestClient) -> None:
    sign_in(ui_client, "member")
    token = csrf_token(ui_client, "/automations/new")

    answer = ui_client.post(
        "/automations/new",
        data=dict(
            _automation_form(
                token,
                **{"trigger-cron": "every day", "step-sabc1-config-expression": "", "name": ""},
            )
        ),
    )

    assert answer.status_code == 400
    assert "Please fix the highlighted fields." in answer.text
    assert "invalid cron expression" in answer.text.lower()
    assert (
        'id="step-sabc1-config-expression-error"' in answer.text or "Field required" in answer.text
    )
    assert 'value="every day"' in answer.text  # what was typed is kept


def test_create_edit_and_version_an_automation(ui_client: TestClient) -> None:
    sign_in(ui_client, "manager")
    automation_id = _create_automation(ui_client)

    detail = ui_client.get(f"/automations/{automation_id}")
    assert detail.status_code == 200
    assert "Automation created" in detail.text
    assert "Cron 0 3 * * *" in detail.text

    token = csrf_token(ui_client, f"/automations/{automation_id}/edit")
    edited = ui_client.post(
        f"/automations/{automation_id}/edit",
        data=dict(_automation_form(token, **{"trigger-cron": "30 4 * * MON-FRI"})),
    )
    assert edited.status_code == 303
    page = ui_client.get(f"/automations/{automation_id}")
    assert "Version 2" in page.text
    assert "30 4 * * MON-FRI" in page.text
    first = ui_client.get(f"/automations/{automation_id}/versions/1")
    assert first.status_code == 200
    assert "0 3 * * *" in first.text
    assert "30 4 * * MON-FRI" not in first.text.split("<pre", 1)[1]
    assert ui_client.get(f"/automations/{automation_id}/versions/9").status_code == 404


def test_json_event_token_shown_once_then_enable_disable_and_delete(ui_client: TestClient) -> None:
    sign_in(ui_client, "admin")
    token = csrf_token(ui_client, "/automations/new")
    created = ui_client.post(
        "/automations/new",
        data=dict(
            _automation_form(
                token,
                trigger_type="json_event",
                **{"trigger-fields": "email = $.customer.email", "trigger-auth": "any"},
            )
        ),
    )
    assert created.status_code == 201
    shown = re.search(
        r'data-testid="new-token">.*?<pre class="json"[^>]*>([^<]+)</pre>', created.text, re.S
    )
    assert shown
    api_token = shown.group(1).strip()
    edit_link = re.search(r"/automations/(\d+)/edit", created.text)
    assert edit_link
    automation_id = int(edit_link.group(1))
    detail = ui_client.get(f"/automations/{automation_id}")
    assert api_token not in detail.text
    assert "••••" + api_token[-4:] in detail.text
    assert "/inbound-event/v1/events/json/triggers?urlTokenId=" in detail.text

    enabled = ui_client.post(f"/automations/{automation_id}/enable", data={"csrf_token": token})
    assert enabled.status_code == 303
    assert 'data-status="enabled"' in ui_client.get("/automations").text
    ui_client.post(f"/automations/{automation_id}/disable", data={"csrf_token": token})
    assert 'data-status="disabled"' in ui_client.get("/automations").text

    deleted = ui_client.post(f"/automations/{automation_id}/delete", data={"csrf_token": token})
    assert deleted.headers["location"] == "/automations"
    assert "deleted" in ui_client.get("/automations").text
    missing = ui_client.get(f"/automations/{automation_id}")
    assert missing.status_code == 404
    assert f"Automation {automation_id} does not exist" in missing.text


def test_the_json_editor_reports_every_problem(ui_client: TestClient) -> None:
    sign_in(ui_client, "admin")
    token = csrf_token(ui_client, "/automations/new?mode=json")

    broken = ui_client.post(
        "/automations/new.json", data={"csrf_token": token, "definition": '{"name": '}
    )
    invalid = ui_client.post(
        "/automations/new.json",
        data={
            "csrf_token": token,
            "definition": json.dumps(
                {
                    "name": "x",
                    "trigger": {"type": "schedule", "cron": "nope"},
                    "steps": [{"action": "no.such.action"}],
                }
            ),
        },
    )
    valid = ui_client.post(
        "/automations/new.json",
        data={
            "csrf_token": token,
            "definition": json.dumps(
                {
                    "name": "From JSON",
                    "trigger": {"type": "schedule", "cron": "0 1 * * *"},
                    "steps": [{"action": "condition", "config": {"expression": "true"}}],
                }
            ),
        },
    )

    assert broken.status_code == 400
    assert "Not valid JSON" in broken.text
    assert invalid.status_code == 400
    assert "trigger" in invalid.text
    assert "invalid cron expression" in invalid.text
    assert valid.status_code == 303


def test_secrets_in_step_configs_show_only_their_last_4(
    ui_client: TestClient, ui_settings: Settings
) -> None:
    sign_in(ui_client, "admin")
    secret = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1Njc4"
    automation_id = _create_automation(
        ui_client,
        **{
            "step-sabc1-action": "http.request",
            "step-sabc1-config-url": "https://example.org/hook",
            "step-sabc1-config-method": "POST",
            "step-sabc1-config-signing_secret": secret,
            "step-sabc1-config-timeout_seconds": "15",
        },
    )

    for path in (
        f"/automations/{automation_id}",
        f"/automations/{automation_id}/edit",
        f"/automations/{automation_id}/edit?mode=json",
        f"/automations/{automation_id}/versions/1",
    ):
        page = ui_client.get(path)
        assert page.status_code == 200
        assert secret not in page.text, path
    assert "••••" + secret[-4:] in ui_client.get(f"/automations/{automation_id}").text

    # Saving the form with the secret field left empty keeps the saved secret.
    token = csrf_token(ui_client, f"/automations/{automation_id}/edit")
    ui_client.post(
        f"/automations/{automation_id}/edit",
        data=dict(
            _automation_form(
                token,
                **{
                    "name": "Renamed",
                    "step-sabc1-action": "http.request",
                    "step-sabc1-config-url": "https://example.org/hook",
                    "step-sabc1-config-method": "POST",
                    "step-sabc1-config-signing_secret": "",
                },
            )
        ),
    )
    db = _store_session(ui_settings)
    try:
        automation = db.get(Automation, automation_id)
        assert automation is not None
        assert automation.name == "Renamed"
        saved = db.get(AutomationVersion, (automation_id, automation.version))
        assert saved is not None
        stored = saved.definition["steps"][0]["config"]["signing_secret"]
        # Encrypted at rest; the edit kept the very same secret.
        assert secret not in stored
        assert unseal(secret_box_for(ui_settings), stored) == secret
    finally:
        _close(db)


# -- runs and outbox --------------------------------------------------------------------------


def test_runs_list_filters_and_run_detail(ui_client: TestClient, ui_settings: Settings) -> None:
    sign_in(ui_client, "admin")
    automation_id = _create_automation(ui_client)
    now = utcnow()
    db = _store_session(ui_settings)
    try:
        for index, status in enumerate(("succeeded", "failed", "running")):
            run_id = f"{automation_id}:event:{index}"
            db.add(
                Run(
                    id=run_id,
                    automation_id=automation_id,
                    automation_version=1,
                    trigger_type="survey_response",
                    trigger_summary=f"response R_{index}",
                    trigger_payload={"responseId": f"R_{index}"},
                    status=status,
                    error="the SMTP server said no" if status == "failed" else None,
                    workflow_id=run_id,
                    created_at=now - timedelta(minutes=index),
                    started_at=now - timedelta(minutes=index),
                    finished_at=None if status == "running" else now,
                )
            )
            db.add(
                RunStep(
                    run_id=run_id,
                    position=0,
                    key="condition",
                    action="condition",
                    status="failed" if status == "failed" else "succeeded",
                    input_summary={"expression": "1 + 1 == 2"},
                    output={"passed": True},
                    error="the SMTP server said no" if status == "failed" else None,
                    attempts=3 if status == "failed" else 1,
                    started_at=now,
                    finished_at=now,
                )
            )
        db.commit()
    finally:
        _close(db)

    everything = ui_client.get("/runs")
    failed = ui_client.get("/runs?status=failed")
    detail = ui_client.get(f"/runs/{automation_id}:event:1")

    assert everything.text.count('data-run-id="') == 3
    assert failed.text.count('data-run-id="') == 1
    assert "response R_1" in failed.text
    assert detail.status_code == 200
    assert "the SMTP server said no" in detail.text
    assert "3 attempts" in detail.text
    assert "Replay" in detail.text
    assert "Cancel run" not in detail.text
    running = ui_client.get(f"/runs/{automation_id}:event:2")
    assert "Cancel run" in running.text
    assert 'sse-connect="/runs/' in running.text
    assert ui_client.get("/runs/nope:nothing").status_code == 404
    none_match = ui_client.get("/runs?status=cancelled")
    assert "No runs match these filters" in none_match.text


def test_finished_run_live_stream_sends_the_page_then_done(
    ui_client: TestClient, ui_settings: Settings
) -> None:
    sign_in(ui_client, "admin")
    automation_id = _create_automation(ui_client)
    db = _store_session(ui_settings)
    try:
        db.add(
            Run(
                id=f"{automation_id}:manual:done",
                automation_id=automation_id,
                automation_version=1,
                trigger_type="manual",
                trigger_summary="by hand",
                trigger_payload={},
                status="succeeded",
                workflow_id=f"{automation_id}:manual:done",
            )
        )
        db.commit()
    finally:
        _close(db)

    with ui_client.stream("GET", f"/runs/{automation_id}:manual:done/live") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        body = "".join(stream.iter_text())

    assert "event: run" in body
    assert "Succeeded" in body
    assert body.rstrip().endswith("event: done\ndata:") or "event: done" in body


def test_outbox_lists_emails_by_status(ui_client: TestClient, ui_settings: Settings) -> None:
    db = _store_session(ui_settings)
    try:
        for index, status in enumerate(("sent", "pending", "failed")):
            db.add(
                OutboxEmail(
                    idempotency_key=f"k{index}",
                    run_id=None,
                    sender="qualflow@localhost",
                    recipients=[f"person{index}@example.org"],
                    subject=f"Subject {status}",
                    body_text=f"Body of the {status} email",
                    status=status,
                    attempts=index,
                    last_error="550 mailbox unavailable" if status == "failed" else None,
                    sent_at=utcnow() if status == "sent" else None,
                )
            )
        db.commit()
        failed_id = next(e.id for e in db.query(OutboxEmail) if e.status == "failed")
    finally:
        _close(db)
    sign_in(ui_client, "viewer")

    everything = ui_client.get("/outbox")
    failed = ui_client.get("/outbox?status=failed")
    detail = ui_client.get(f"/outbox/{failed_id}")

    assert everything.status_code == 200
    assert all(f"Subject {s}" in everything.text for s in ("sent", "pending", "failed"))
    assert "Subject failed" in failed.text
    assert "Subject sent" not in failed.text
    assert "550 mailbox unavailable" in detail.text
    assert "Body of the failed email" in detail.text
    assert ui_client.get("/outbox/99999").status_code == 404


def test_repeated_wrong_passwords_are_throttled_like_the_api(
    ui_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qualflow.accounts.throttle import sign_in_throttle

    monkeypatch.setattr(sign_in_throttle, "max_failures", 2)
    token = csrf_token(ui_client)
    email = email_of("member")
    try:
        answers = [
            ui_client.post(
                "/sign-in", data={"email": email, "password": "guess", "csrf_token": token}
            )
            for _ in range(sign_in_throttle.max_failures + 1)
        ]
        right = ui_client.post(
            "/sign-in", data={"email": email, "password": PASSWORD, "csrf_token": token}
        )
    finally:
        sign_in_throttle.succeeded(email, "testclient")

    assert {a.status_code for a in answers[:-1]} == {400}
    assert answers[-1].status_code == 429
    assert "Too many failed sign-ins" in answers[-1].text
    assert right.status_code == 429  # even the right password waits until the window passes
