"""The email outbox: what automations sent, what waits to be sent, what failed and why."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer
from starlette.responses import Response

from qualflow.accounts.permissions import Area, Level
from qualflow.accounts.principal import Principal
from qualflow.notify.models import OutboxEmail
from qualflow.web.deps import get_db
from qualflow.web.ui.access import UiNotFound, ui_require
from qualflow.web.ui.numbers import page_number
from qualflow.web.ui.rendering import render

router = APIRouter()

# Emails are what runs did, so seeing them takes the same permission as seeing runs.
OutboxViewer = Annotated[Principal, Depends(ui_require(Area.RUNS, Level.VIEW))]
Db = Annotated[Session, Depends(get_db)]

STATUSES = ("pending", "sent", "failed")
PAGE_SIZE = 50


@router.get("/outbox", name="ui_outbox")
def outbox_page(
    request: Request,
    principal: OutboxViewer,
    db: Db,
    status: str | None = None,
    page: str | None = None,
) -> Response:
    chosen = status if status in STATUSES else None
    number = page_number(page, PAGE_SIZE)
    conditions = [OutboxEmail.status == chosen] if chosen else []
    by_status = select(OutboxEmail.status, func.count()).group_by(OutboxEmail.status)
    counts = {state: count for state, count in db.execute(by_status)}
    # The tabs' counts already say how many there are: no second COUNT over the outbox.
    total = counts.get(chosen, 0) if chosen else sum(counts.values())
    # An old link past the end (emails purged since) shows the last page, not "empty".
    number = min(number, max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1))
    emails = db.scalars(
        select(OutboxEmail)
        # The list shows no body: none is read (or decrypted). raiseload: a template that
        # came to show one would fail its tests instead of loading each row's body alone.
        .options(defer(OutboxEmail.body_text, raiseload=True))
        .options(defer(OutboxEmail.body_html, raiseload=True))
        .where(*conditions)
        .order_by(OutboxEmail.created_at.desc(), OutboxEmail.id.desc())
        .limit(PAGE_SIZE)
        .offset((number - 1) * PAGE_SIZE)
    ).all()

    def query(**overrides: object) -> str:
        values = {"status": chosen, "page": number if number > 1 else None, **overrides}
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})

    return render(
        request,
        "outbox/list.html",
        principal=principal,
        nav="outbox",
        emails=emails,
        counts=counts,
        total=total,
        status=chosen,
        statuses=STATUSES,
        page=number,
        has_next=number * PAGE_SIZE < total,
        query=query,
    )


@router.get("/outbox/{email_id}", name="ui_outbox_email")
def outbox_email(request: Request, principal: OutboxViewer, db: Db, email_id: int) -> Response:
    email = db.get(OutboxEmail, email_id)
    if email is None:
        back = request.url_for("ui_outbox").path
        raise UiNotFound(f"Email {email_id}", back, "Back to the outbox")
    return render(request, "outbox/detail.html", principal=principal, nav="outbox", email=email)
