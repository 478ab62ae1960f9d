"""The web UI: server-rendered pages (Jinja2 + vendored htmx) over the hub's services.

``install_ui(app)`` is the one line the app factory calls: it mounts ``/static``, adds the page
routes and the handlers that turn UI failures into pages (sign-in redirects, 403/404 pages).
Pages check permissions with :func:`qualflow.web.ui.access.ui_require`, the UI face of the
accounts package's ``require(area, level)``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from qualflow.web.ui import auth_pages, automations, connections, home, outbox, people, runs
from qualflow.web.ui.access import refuse_impossible_ids
from qualflow.web.ui.errors import install_error_pages
from qualflow.web.ui.rendering import STATIC_DIR

__all__ = ["install_ui", "router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(refuse_impossible_ids)])
for module in (auth_pages, home, connections, automations, runs, outbox, people):
    router.include_router(module.router)


def install_ui(app: FastAPI) -> None:
    """Mount the UI on ``app``: static assets, pages and their error handling."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
    install_error_pages(app)
