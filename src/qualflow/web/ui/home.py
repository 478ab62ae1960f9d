"""The overview page: what is connected, what runs, what needs attention."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.responses import Response

from qualflow.accounts.permissions import Area
from qualflow.connections.service import visible_connections
from qualflow.engine.models import Automation, Run
from qualflow.incentives.manage import low_stock
from qualflow.incentives.models import Reward
from qualflow.notify.models import OutboxEmail
from qualflow.store.base import utcnow
from qualflow.web.deps import get_db
from qualflow.web.ui.access import UiPrincipal
from qualflow.web.ui.rendering import render

router = APIRouter()


def _run_counts(db: Session, since_hours: int) -> dict[str, int]:
    since = utcnow() - timedelta(hours=since_hours)
    rows = db.execute(
        select(Run.status, func.count()).where(Run.created_at >= since).group_by(Run.status)
    )
    return {status: count for status, count in rows}


@router.get("/", name="ui_home", include_in_schema=False)
def home(
    request: Request, principal: UiPrincipal, db: Annotated[Session, Depends(get_db)]
) -> Response:
    stats: dict[str, Any] = {}
    recent: list[dict[str, Any]] = []
    if principal.can(Area.AUTOMATIONS):
        stats["automations"] = db.scalar(select(func.count()).select_from(Automation)) or 0
        stats["automations_enabled"] = (
            db.scalar(select(func.count()).select_from(Automation).where(Automation.enabled)) or 0
        )
    if principal.can(Area.RUNS):
        counts = _run_counts(db, 24)
        stats["runs_24h"] = sum(counts.values())
        stats["runs_failed_24h"] = counts.get("failed", 0)
        stats["runs_active"] = counts.get("queued", 0) + counts.get("running", 0)
        stats["emails_24h"] = (
            db.scalar(
                select(func.count())
                .select_from(OutboxEmail)
                .where(OutboxEmail.created_at >= utcnow() - timedelta(hours=24))
            )
            or 0
        )
        names = {id_: name for id_, name in db.execute(select(Automation.id, Automation.name))}
        for run in db.scalars(select(Run).order_by(Run.created_at.desc()).limit(8)):
            recent.append({"run": run, "automation": names.get(run.automation_id, "—")})
    if principal.can(Area.CONNECTIONS):
        stats["connections"] = len(visible_connections(db, principal))
    if principal.can(Area.INCENTIVES):
        # Held rewards wait for a person: the overview says so until someone reviews them.
        stats["rewards_held"] = (
            db.scalar(select(func.count()).select_from(Reward).where(Reward.status == "held")) or 0
        )
        stats["low_stock"] = low_stock(db)
    return render(request, "home.html", principal=principal, nav="home", stats=stats, recent=recent)
