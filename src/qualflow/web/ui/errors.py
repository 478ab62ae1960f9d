"""How UI failures look in a browser: sign-in redirects and error pages, never JSON."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response

from qualflow.accounts.principal import Principal
from qualflow.web.ui import flash
from qualflow.web.ui.access import SignInRequired, UiAdminRequired, UiForbidden, UiNotFound
from qualflow.web.ui.csrf import CsrfError
from qualflow.web.ui.rendering import render

__all__ = ["install_error_pages", "render_error"]


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render_error(
    request: Request,
    status_code: int,
    heading: str,
    message: str,
    *,
    detail: str | None = None,
    back_href: str | None = None,
    back_label: str = "Back to overview",
) -> Response:
    principal: Principal | None = getattr(request.state, "ui_principal", None)
    context: dict[str, Any] = {
        "error_code": status_code,
        "heading": heading,
        "message": message,
        "detail": detail,
        "back_href": back_href or str(request.url_for("ui_home")),
        "back_label": back_label,
        "layout": "layout.html" if principal else "auth_layout.html",
    }
    response = render(
        request, "error.html", principal=principal, status_code=status_code, **context
    )
    if _is_htmx(request):
        # Swap the whole page so the message is not squeezed into a table cell.
        response.headers["HX-Retarget"] = "body"
        response.headers["HX-Reswap"] = "innerHTML"
    return response


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    target = f"{request.url_for('ui_sign_in').path}?{urlencode({'next': exc.next_url})}"
    if _is_htmx(request):
        response: Response = Response(status_code=204, headers={"HX-Redirect": target})
    else:
        response = RedirectResponse(target, status_code=303)
    if exc.message:
        flash.add(request, response, "info", exc.message)
    return response


async def _forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UiForbidden)
    doing = f" to {exc.action}" if exc.action else ""
    # A refused form post is a button someone pressed, not a page they opened.
    what = "action" if exc.action or request.method != "GET" else "page"
    return render_error(
        request,
        403,
        "You don't have access to this",
        f"This {what} requires {exc.level.label} permission on {exc.area.label}{doing}.",
        detail="Ask an admin of this workspace to change your role or grant the permission.",
    )


async def _admin_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UiAdminRequired)
    return render_error(
        request,
        403,
        "You don't have access to this",
        "This page requires the admin role.",
        detail="Only admins manage people. Ask an admin of this workspace if you need a change.",
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UiNotFound)
    return render_error(
        request,
        404,
        "Not found",
        f"{exc.what} does not exist. It may have been deleted.",
        back_href=exc.back_href,
        back_label=exc.back_label,
    )


async def _csrf(request: Request, exc: Exception) -> Response:
    return render_error(request, 403, "This form has expired", str(exc))


def install_error_pages(app: FastAPI) -> None:
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(UiForbidden, _forbidden)
    app.add_exception_handler(UiNotFound, _not_found)
    app.add_exception_handler(UiAdminRequired, _admin_required)
    app.add_exception_handler(CsrfError, _csrf)
