"""Connection pages: list, create (token, OAuth or a provisioned service user), edit, delete.

Credentials are validated with ``whoami`` on save (the connections package does it) and the page
shows what they resolved to. Secrets are never sent back to the browser: only their last 4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from qualflow.accounts.permissions import Area, Level
from qualflow.accounts.principal import Principal
from qualflow.connections.clients import Credentials
from qualflow.connections.errors import (
    ConnectionForbidden,
    ConnectionInUse,
    ConnectionNotFound,
    ConnectionsError,
    CredentialsRejected,
    DuplicateConnectionName,
    ProvisioningFailed,
)
from qualflow.connections.models import DEFAULT_REQUESTS_PER_MINUTE, Connection
from qualflow.connections.provisioning import ServiceUserRequest, provision_service_user
from qualflow.connections.service import (
    ConnectionChanges,
    ConnectionSpec,
    can_change_sharing,
    create_connection,
    delete_connection,
    get_visible_connection,
    revalidate_connection,
    update_connection,
    visible_connections,
)
from qualflow.connections.surveys import list_surveys
from qualflow.connections.usage import connection_usages
from qualflow.qualtrics.datacenters import DATACENTERS
from qualflow.web.deps import get_db
from qualflow.web.ui import flash
from qualflow.web.ui.access import UiNotFound, ui_require
from qualflow.web.ui.csrf import check_csrf
from qualflow.web.ui.numbers import whole_number
from qualflow.web.ui.rendering import render, render_fragment

router = APIRouter()

Db = Annotated[Session, Depends(get_db)]
Viewer = Annotated[Principal, Depends(ui_require(Area.CONNECTIONS, Level.VIEW))]
Manager = Annotated[Principal, Depends(ui_require(Area.CONNECTIONS, Level.MANAGE))]
CsrfChecked = Depends(check_csrf)

#: Form field that each ConnectionSpec/ConnectionChanges field is shown under.
_FIELD_OF = {"datacenter": "datacenter", "base_url": "base_url", "api_token": "api_token"}


def last4(secret: str | None) -> str:
    """How a stored secret is shown: never more than its last 4 characters."""
    return f"••••{secret[-4:]}" if secret and len(secret) >= 8 else "••••" if secret else "—"


@dataclass
class ConnectionForm:
    """The create/edit form's values as typed (secrets are never echoed back)."""

    name: str = ""
    location: str = "datacenter"
    datacenter: str = ""
    base_url: str = ""
    auth: str = "token"
    oauth_client_id: str = ""
    oauth_scope: str = ""
    username: str = ""
    shared: bool = False
    requests_per_minute: str = str(DEFAULT_REQUESTS_PER_MINUTE)
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, connection: Connection) -> ConnectionForm:
        return cls(
            name=connection.name,
            location="base_url" if connection.base_url else "datacenter",
            datacenter=connection.datacenter or "",
            base_url=connection.base_url or "",
            auth=connection.auth_type,
            oauth_client_id=connection.oauth_client_id or "",
            oauth_scope=connection.oauth_scope or "",
            username=connection.username or "",
            shared=connection.shared,
            requests_per_minute=str(connection.requests_per_minute),
        )

    @classmethod
    def parse(cls, form: FormData) -> tuple[ConnectionForm, dict[str, str]]:
        """The typed values, plus the secrets (kept apart so they are never re-rendered)."""

        def text(name: str) -> str:
            value = form.get(name)
            return value.strip() if isinstance(value, str) else ""

        secrets = {name: text(name) for name in ("api_token", "oauth_client_secret", "admin_token")}
        parsed = cls(
            name=text("name"),
            location=text("location") or "datacenter",
            datacenter=text("datacenter"),
            base_url=text("base_url"),
            auth=text("auth") or "token",
            oauth_client_id=text("oauth_client_id"),
            oauth_scope=text("oauth_scope"),
            username=text("username"),
            shared=bool(form.get("shared")),
            requests_per_minute=text("requests_per_minute") or str(DEFAULT_REQUESTS_PER_MINUTE),
        )
        return parsed, secrets

    def location_fields(self) -> dict[str, Any]:
        if self.location == "base_url":
            return {"base_url": self.base_url or None}
        return {"datacenter": self.datacenter or None}

    def rate(self) -> int | None:
        value = whole_number(self.requests_per_minute)
        if value is None:
            self.errors["requests_per_minute"] = "Enter a whole number of requests per minute."
        return value


def _validation_errors(exc: ValidationError, form: ConnectionForm) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ())]
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        message = message[:1].upper() + message[1:]
        if loc:
            errors.setdefault(_FIELD_OF.get(loc[0], loc[0]), message)
        elif "datacenter or base_url" in message:
            errors.setdefault(form.location, message)
        elif "OAuth" in message or "API token" in message:
            errors.setdefault("api_token" if form.auth == "token" else "oauth_client_id", message)
        else:
            errors.setdefault("__all__", message)
    return errors


def _error_for(exc: ConnectionsError, form: ConnectionForm) -> tuple[str, str]:
    """Which field a connections error belongs to, and its message for people."""
    if isinstance(exc, DuplicateConnectionName):
        return "name", "Another connection already has this name."
    if isinstance(exc, CredentialsRejected):
        target = "api_token" if form.auth == "token" else "oauth_client_secret"
        return target, f"Qualtrics rejected these credentials: {exc.message}"
    message = exc.message[:1].upper() + exc.message[1:]
    if "datacenter" in exc.message.lower():
        return "datacenter" if form.location == "datacenter" else "base_url", message
    return "__all__", message


def _load(request: Request, db: Session, principal: Principal, connection_id: int) -> Connection:
    try:
        return get_visible_connection(db, principal, connection_id)
    except ConnectionNotFound:
        back = request.url_for("ui_connections").path
        raise UiNotFound(f"Connection {connection_id}", back, "Back to connections") from None


def _form_page(
    request: Request,
    principal: Principal,
    form: ConnectionForm,
    *,
    connection: Connection | None = None,
    mode: str = "credentials",
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "connections/edit.html",
        principal=principal,
        nav="connections",
        form=form,
        errors=form.errors,
        connection=connection,
        mode=mode,
        datacenters=DATACENTERS,
        can_share=connection is None or can_change_sharing(principal, connection),
        token_hint=last4(connection.api_token) if connection else None,
        secret_hint=last4(connection.oauth_client_secret) if connection else None,
        status_code=status_code,
    )


# -- list and detail --------------------------------------------------------------------------


@router.get("/connections", name="ui_connections")
def connections_page(request: Request, principal: Viewer, db: Db) -> Response:
    rows = [
        {"connection": c, "secret": last4(c.api_token or c.oauth_client_secret)}
        for c in visible_connections(db, principal)
    ]
    return render(
        request, "connections/list.html", principal=principal, nav="connections", rows=rows
    )


@router.get("/connections/new", name="ui_connection_new")
def new_connection(request: Request, principal: Manager, mode: str = "credentials") -> Response:
    chosen = "service_user" if mode == "service_user" else "credentials"
    return _form_page(request, principal, ConnectionForm(datacenter="iad1"), mode=chosen)


@router.post("/connections/new", name="ui_connection_create", dependencies=[CsrfChecked])
async def create_connection_submit(request: Request, principal: Manager, db: Db) -> Response:
    form, secrets = ConnectionForm.parse(await request.form())
    rate = form.rate()
    auth: dict[str, Any] = (
        {"api_token": secrets["api_token"] or None}
        if form.auth == "token"
        else {
            "oauth_client_id": form.oauth_client_id or None,
            "oauth_client_secret": secrets["oauth_client_secret"] or None,
            "oauth_scope": form.oauth_scope or None,
        }
    )
    if form.auth == "token" and not secrets["api_token"]:
        form.errors["api_token"] = "Enter the API token (Qualtrics: Account settings → API)."
    try:
        spec = ConnectionSpec(
            name=form.name,
            **form.location_fields(),
            **auth,
            username=form.username or None,
            shared=form.shared,
            requests_per_minute=DEFAULT_REQUESTS_PER_MINUTE if rate is None else rate,
        )
    except ValidationError as exc:
        for name, message in _validation_errors(exc, form).items():
            form.errors.setdefault(name, message)
        return _form_page(request, principal, form, status_code=400)
    if form.errors:
        return _form_page(request, principal, form, status_code=400)
    try:
        connection, identity = await create_connection(db, spec, owner_id=principal.user_id)
    except ConnectionsError as exc:
        target, message = _error_for(exc, form)
        form.errors[target] = message
        return _form_page(request, principal, form, status_code=400)
    db.commit()
    return _saved(request, connection, "Connected", identity.brand_id, identity.user_name)


def _saved(
    request: Request, connection: Connection, verb: str, brand: str | None, user: str | None
) -> Response:
    target = request.url_for("ui_connection", connection_id=connection.id).path
    response = RedirectResponse(target, status_code=303)
    flash.add(
        request,
        response,
        "success",
        f"{verb}: brand “{brand or 'unknown'}” as {user or 'unknown user'}.",
    )
    return response


@router.post(
    "/connections/service-user", name="ui_connection_provision", dependencies=[CsrfChecked]
)
async def provision_connection(request: Request, principal: Manager, db: Db) -> Response:
    """Create (or find) a dedicated Qualtrics user with a brand admin's token, used once."""
    raw = await request.form()
    form, secrets = ConnectionForm.parse(raw)
    username = raw.get("service_username")
    service_username = username.strip() if isinstance(username, str) else ""
    rate = form.rate()
    if not form.name:
        form.errors["name"] = "Give the connection a name."
    if not secrets["admin_token"]:
        form.errors["admin_token"] = "Enter a brand administrator's API token."
    location = form.location_fields()
    if not any(location.values()):
        form.errors[form.location] = "Choose a datacenter or enter a base URL."
    if rate is not None:
        try:
            # Checked before a Qualtrics user is provisioned for a connection refused anyway.
            ConnectionChanges(requests_per_minute=rate)
        except ValidationError as exc:
            form.errors.update(_validation_errors(exc, form))
    if form.errors:
        return _form_page(request, principal, form, mode="service_user", status_code=400)
    admin = Credentials(
        datacenter=location.get("datacenter"),
        base_url=location.get("base_url"),
        api_token=secrets["admin_token"],
    )
    try:
        provisioned = await provision_service_user(
            admin, ServiceUserRequest(username=service_username or "qualflow")
        )
        spec = ConnectionSpec(
            name=form.name,
            **location,
            api_token=provisioned.api_token,
            username=provisioned.username,
            shared=form.shared,
            requests_per_minute=DEFAULT_REQUESTS_PER_MINUTE if rate is None else rate,
        )
        connection, identity = await create_connection(
            db, spec, owner_id=principal.user_id, service_user=True
        )
    except ProvisioningFailed as exc:
        form.errors["admin_token"] = exc.message[:1].upper() + exc.message[1:]
        return _form_page(request, principal, form, mode="service_user", status_code=400)
    except ConnectionsError as exc:
        target, message = _error_for(exc, form)
        form.errors["admin_token" if target == "api_token" else target] = message
        return _form_page(request, principal, form, mode="service_user", status_code=400)
    db.commit()
    verb = "Service user created" if provisioned.created else "Existing service user connected"
    return _saved(request, connection, verb, identity.brand_id, identity.user_name)


@router.get("/connections/{connection_id}", name="ui_connection")
def connection_page(request: Request, principal: Viewer, db: Db, connection_id: int) -> Response:
    connection = _load(request, db, principal, connection_id)
    return render(
        request,
        "connections/detail.html",
        principal=principal,
        nav="connections",
        connection=connection,
        secret=last4(connection.api_token or connection.oauth_client_secret),
        usages=connection_usages(db, connection.id),
    )


@router.get("/connections/{connection_id}/surveys", name="ui_connection_surveys")
async def connection_surveys(
    request: Request,
    principal: Viewer,
    db: Db,
    connection_id: int,
    shared_only: bool = False,
) -> Response:
    """The surveys the connection's user sees (loaded into the detail page by htmx)."""
    connection = _load(request, db, principal, connection_id)
    try:
        surveys = await list_surveys(connection, shared_only=shared_only)
    except ConnectionsError as exc:
        return render_fragment(
            request,
            "connections/_surveys.html",
            principal=principal,
            surveys=[],
            problem=exc.message,
            connection=connection,
            shared_only=shared_only,
        )
    return render_fragment(
        request,
        "connections/_surveys.html",
        principal=principal,
        surveys=surveys,
        problem=None,
        connection=connection,
        shared_only=shared_only,
    )


# -- edit, re-validate, delete ----------------------------------------------------------------


@router.get("/connections/{connection_id}/edit", name="ui_connection_edit")
def edit_connection(request: Request, principal: Manager, db: Db, connection_id: int) -> Response:
    connection = _load(request, db, principal, connection_id)
    return _form_page(request, principal, ConnectionForm.of(connection), connection=connection)


@router.post(
    "/connections/{connection_id}/edit", name="ui_connection_update", dependencies=[CsrfChecked]
)
async def update_connection_submit(
    request: Request, principal: Manager, db: Db, connection_id: int
) -> Response:
    connection = _load(request, db, principal, connection_id)
    form, secrets = ConnectionForm.parse(await request.form())
    rate = form.rate()
    if not form.name:
        form.errors["name"] = "Give the connection a name."
    changes: dict[str, Any] = {"name": form.name or None, "username": form.username}
    location = form.location_fields()
    current = {"datacenter": connection.datacenter, "base_url": connection.base_url}
    if not any(location.values()):
        form.errors[form.location] = "Choose a datacenter or enter a base URL."
    elif any(current.get(k) != v for k, v in location.items()):
        changes.update(location)
    switching = form.auth != connection.auth_type
    if form.auth == "token":
        if secrets["api_token"]:
            changes["api_token"] = secrets["api_token"]
        elif switching:
            form.errors["api_token"] = "Enter the API token to switch to token authentication."
    else:
        if secrets["oauth_client_secret"]:
            changes["oauth_client_secret"] = secrets["oauth_client_secret"]
        elif switching:
            form.errors["oauth_client_secret"] = "Enter the client secret to switch to OAuth."
        if form.oauth_client_id != (connection.oauth_client_id or ""):
            changes["oauth_client_id"] = form.oauth_client_id or None
        if form.oauth_scope and form.oauth_scope != (connection.oauth_scope or ""):
            changes["oauth_scope"] = form.oauth_scope
    if form.shared != connection.shared:
        changes["shared"] = form.shared
    if rate is not None:
        changes["requests_per_minute"] = rate
    if form.errors:
        return _form_page(request, principal, form, connection=connection, status_code=400)
    try:
        identity = await update_connection(db, principal, connection, ConnectionChanges(**changes))
    except ValidationError as exc:
        form.errors.update(_validation_errors(exc, form))
        return _form_page(request, principal, form, connection=connection, status_code=400)
    except ConnectionForbidden as exc:
        form.errors["shared"] = exc.message[:1].upper() + exc.message[1:]
        return _form_page(request, principal, form, connection=connection, status_code=400)
    except ConnectionsError as exc:
        db.rollback()
        target, message = _error_for(exc, form)
        form.errors[target] = message
        return _form_page(request, principal, form, connection=connection, status_code=400)
    db.commit()
    if identity is not None:
        return _saved(
            request, connection, "Saved and re-validated", identity.brand_id, identity.user_name
        )
    target = request.url_for("ui_connection", connection_id=connection.id).path
    response = RedirectResponse(target, status_code=303)
    flash.add(request, response, "success", "Connection saved.")
    return response


@router.post(
    "/connections/{connection_id}/revalidate",
    name="ui_connection_revalidate",
    dependencies=[CsrfChecked],
)
async def revalidate(request: Request, principal: Manager, db: Db, connection_id: int) -> Response:
    connection = _load(request, db, principal, connection_id)
    target = request.url_for("ui_connection", connection_id=connection.id).path
    response = RedirectResponse(target, status_code=303)
    try:
        identity = await revalidate_connection(db, connection)
    except ConnectionsError as exc:
        db.rollback()
        flash.add(request, response, "error", f"Validation failed: {exc.message}")
        return response
    db.commit()
    flash.add(
        request,
        response,
        "success",
        f"Credentials work: brand “{identity.brand_id}” as {identity.user_name}.",
    )
    return response


@router.post(
    "/connections/{connection_id}/delete", name="ui_connection_delete", dependencies=[CsrfChecked]
)
def delete(request: Request, principal: Manager, db: Db, connection_id: int) -> Response:
    connection = _load(request, db, principal, connection_id)
    name = connection.name
    try:
        delete_connection(db, connection)
    except ConnectionInUse as exc:
        db.rollback()
        target = request.url_for("ui_connection", connection_id=connection_id).path
        response = RedirectResponse(target, status_code=303)
        flash.add(request, response, "error", f"Not deleted: {exc.message}.")
        return response
    db.commit()
    response = RedirectResponse(request.url_for("ui_connections").path, status_code=303)
    flash.add(request, response, "success", f"Connection “{name}” deleted.")
    return response
