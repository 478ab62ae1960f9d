"""A list page past the last one (an old link, rows purged since) shows the last page, never
the empty state that says nothing exists."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from qualflow.engine.models import Run
from qualflow.notify.models import OutboxEmail
from qualflow.store.base import utcnow
from tests.hub.hub_support import MakePerson
from tests.hub.test_ui_audit_numbers import signed_in


def test_runs_past_the_last_page_show_the_last_runs(
    hub: TestClient, make_person: MakePerson, db: Session
) -> None:
    token = signed_in(hub, make_person)
    created = hub.post(
        "/automations/new",
        data={"csrf_token": token, "name": "Nightly", "connection_id": "",
              "trigger_type": "schedule", "trigger-cron": "0 3 * * *", "step": "sa1",
              "step-sa1-action": "condition", "step-sa1-config-expression": "true"},
        follow_redirects=False,
    )  # fmt: skip
    assert created.status_code == 303, created.text
    automation_id = int(created.headers["location"].rsplit("/", 1)[1])
    for index in range(3):
        run_id = f"{automation_id}:event:{index}"
        db.add(
            Run(id=run_id, automation_id=automation_id, automation_version=1,
                trigger_type="schedule", trigger_summary=f"tick {index}", trigger_payload={},
                status="succeeded", workflow_id=run_id, created_at=utcnow())
        )  # fmt: skip
    db.commit()

    page = hub.get("/runs?page=7")

    assert page.status_code == 200
    assert page.text.count('data-run-id="') == 3
    assert "No runs yet" not in page.text


def test_the_outbox_past_the_last_page_shows_the_last_emails(
    hub: TestClient, make_person: MakePerson, db: Session
) -> None:
    signed_in(hub, make_person)
    db.add(
        OutboxEmail(idempotency_key="k1", sender="qualflow@localhost",
                    recipients=["person@example.org"], subject="Your reward", body_text="Hi",
                    status="sent", sent_at=utcnow())
    )  # fmt: skip
    db.commit()

    page = hub.get("/outbox?page=9")

    assert page.status_code == 200
    assert "Your reward" in page.text
    assert "The outbox is empty" not in page.text
