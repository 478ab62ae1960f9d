"""Create, change, validate, list and delete connections, with who-may-see-what rules.

Visibility: a connection is visible to its owner, to everyone when it is shared with the
workspace, and to admins. The API additionally requires View (reading) or Manage (changing)
permission on the Connections area; only the owner or an admin may make a shared connection
private again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qualflow.accounts.principal import Principal
from qualflow.connections.clients import (
    INTERACTIVE_RATE_LIMIT_WAIT,
    Credentials,
    invalidate_clients,
    limiter_for,
)
from qualflow.connections.errors import (
    ConnectionForbidden,
    ConnectionInUse,
    ConnectionNotFound,
    DuplicateConnectionName,
    InvalidConnection,
)
from qualflow.connections.models import DEFAULT_REQUESTS_PER_MINUTE, Connection
from qualflow.connections.usage import connection_usages, forget_connection
from qualflow.connections.validation import Identity, check_credentials
from qualflow.store.base import utcnow
from qualflow.store.secrets import register_secret
from qualflow.validation import refuse_control_characters, refuse_credentials_in_url

__all__ = [
    "ConnectionChanges",
    "ConnectionSpec",
    "Name",
    "Short",
    "Url",
    "apply_identity",
    "create_connection",
    "delete_connection",
    "get_visible_connection",
    "revalidate_connection",
    "update_connection",
    "visible_connections",
]

Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(refuse_control_characters),
]
#: The longest API token or OAuth secret a connection accepts.
MAX_SECRET_LENGTH = 2000
Secret = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SECRET_LENGTH)
]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    AfterValidator(refuse_credentials_in_url),
]


class ConnectionSpec(BaseModel):
    """Everything needed to create a connection."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="Unique name, e.g. `Main brand`.")
    datacenter: Short | None = Field(default=None, description="Datacenter id, e.g. `iad1`.")
    base_url: Url | None = Field(
        default=None, description="Brand host or compatible server instead of a datacenter."
    )
    api_token: Secret | None = Field(default=None, description="Qualtrics API token.")
    oauth_client_id: Short | None = None
    oauth_client_secret: Secret | None = None
    oauth_scope: Short | None = None
    username: Short | None = Field(
        default=None, description="Qualtrics login name (JSON-event Basic auth)."
    )
    shared: bool = Field(default=False, description="Visible to the whole workspace.")
    requests_per_minute: int = Field(default=DEFAULT_REQUESTS_PER_MINUTE, ge=1, le=100_000)

    @model_validator(mode="after")
    def _one_location_one_auth(self) -> ConnectionSpec:
        if bool(self.datacenter) == bool(self.base_url):
            raise ValueError("give exactly one of datacenter or base_url")
        oauth = bool(self.oauth_client_id or self.oauth_client_secret)
        if oauth and self.api_token:
            raise ValueError("give an API token or OAuth client credentials, not both")
        if not oauth and not self.api_token:
            raise ValueError("an API token or OAuth client credentials are required")
        if oauth and not (self.oauth_client_id and self.oauth_client_secret):
            raise ValueError("OAuth needs both oauth_client_id and oauth_client_secret")
        return self

    def credentials(self) -> Credentials:
        return Credentials(
            datacenter=self.datacenter,
            base_url=self.base_url,
            api_token=self.api_token,
            oauth_client_id=self.oauth_client_id,
            oauth_client_secret=self.oauth_client_secret,
            oauth_scope=self.oauth_scope,
        )


class ConnectionChanges(BaseModel):
    """A partial update. Omitted fields keep their value; secrets are replaced only when given.

    Giving ``datacenter`` clears ``base_url`` and vice versa; giving ``api_token`` switches to
    token auth (dropping OAuth credentials) and giving OAuth credentials switches to OAuth.
    """

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    datacenter: Short | None = None
    base_url: Url | None = None
    api_token: Secret | None = None
    oauth_client_id: Short | None = None
    oauth_client_secret: Secret | None = None
    oauth_scope: Short | None = None
    username: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = (
        Field(default=None, description="Empty string removes the username.")
    )
    shared: bool | None = None
    requests_per_minute: int | None = Field(default=None, ge=1, le=100_000)

    @model_validator(mode="after")
    def _consistent(self) -> ConnectionChanges:
        if self.datacenter and self.base_url:
            raise ValueError("give either datacenter or base_url, not both")
        if self.api_token and (self.oauth_client_id or self.oauth_client_secret):
            raise ValueError("give an API token or OAuth client credentials, not both")
        return self

    @property
    def touches_credentials(self) -> bool:
        fields = (
            "datacenter",
            "base_url",
            "api_token",
            "oauth_client_id",
            "oauth_client_secret",
            "oauth_scope",
        )
        return any(getattr(self, name) is not None for name in fields)


def apply_identity(connection: Connection, identity: Identity) -> None:
    connection.brand_id = identity.brand_id
    connection.qualtrics_user_id = identity.user_id
    connection.qualtrics_user_name = identity.user_name
    connection.qualtrics_user_email = identity.email
    connection.resolved_datacenter = identity.datacenter
    connection.validated_at = utcnow()


def _ensure_name_free(db: Session, name: str, *, except_id: int | None = None) -> None:
    other = db.scalar(select(Connection.id).where(Connection.name == name))
    if other is not None and other != except_id:
        raise DuplicateConnectionName(f"a connection named {name!r} already exists")


def _flush(db: Session, name: str) -> None:
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        raise DuplicateConnectionName(f"a connection named {name!r} already exists") from None


async def create_connection(
    db: Session, spec: ConnectionSpec, *, owner_id: int | None, service_user: bool = False
) -> tuple[Connection, Identity]:
    """Validate the credentials with ``whoami``, then save the connection (not committed)."""
    _ensure_name_free(db, spec.name)
    for secret in (spec.api_token, spec.oauth_client_secret):
        register_secret(secret)
    identity = await check_credentials(spec.credentials())
    connection = Connection(
        name=spec.name,
        datacenter=spec.datacenter,
        base_url=spec.base_url,
        auth_type="oauth" if spec.oauth_client_id else "token",
        api_token=spec.api_token,
        oauth_client_id=spec.oauth_client_id,
        oauth_client_secret=spec.oauth_client_secret,
        oauth_scope=spec.oauth_scope,
        username=spec.username,
        owner_id=owner_id,
        shared=spec.shared,
        requests_per_minute=spec.requests_per_minute,
        service_user=service_user,
    )
    apply_identity(connection, identity)
    db.add(connection)
    _flush(db, spec.name)
    return connection, identity


def _visible_to(principal: Principal) -> list[ColumnElement[bool]]:
    """The conditions of the connections the person may see: theirs and the shared ones
    (admins see all)."""
    if principal.is_admin:
        return []
    return [or_(Connection.shared.is_(True), Connection.owner_id == principal.user_id)]


def visible_connections(db: Session, principal: Principal) -> Sequence[Connection]:
    """Every connection the person may see, by name (as pickers show them)."""
    return db.scalars(
        select(Connection).where(*_visible_to(principal)).order_by(Connection.name)
    ).all()


def visible_connections_page(
    db: Session, principal: Principal, *, limit: int, offset: int
) -> Sequence[Connection]:
    """A page of the connections the person may see, by id: unlike names, ids never change, so
    a rename between two pages cannot move a connection from one page to the other."""
    return db.scalars(
        select(Connection)
        .where(*_visible_to(principal))
        .order_by(Connection.id)
        .limit(limit)
        .offset(offset)
    ).all()


def count_visible_connections(db: Session, principal: Principal) -> int:
    counted = select(func.count()).select_from(Connection).where(*_visible_to(principal))
    return db.scalar(counted) or 0


def get_visible_connection(db: Session, principal: Principal, connection_id: int) -> Connection:
    """The connection if the person may see it; private ones of others look like missing ones."""
    connection = db.get(Connection, connection_id)
    visible = connection is not None and (
        principal.is_admin or connection.shared or connection.owner_id == principal.user_id
    )
    if connection is None or not visible:
        raise ConnectionNotFound(f"connection {connection_id} does not exist")
    return connection


def can_change_sharing(principal: Principal, connection: Connection) -> bool:
    return principal.is_admin or connection.owner_id == principal.user_id


async def update_connection(
    db: Session, principal: Principal, connection: Connection, changes: ConnectionChanges
) -> Identity | None:
    """Apply changes; re-validate with ``whoami`` when location or credentials changed.

    Returns the new identity when re-validated. Nothing is written if validation fails.
    """
    changes_sharing = changes.shared is not None and changes.shared != connection.shared
    if changes_sharing and not can_change_sharing(principal, connection):
        raise ConnectionForbidden(
            f"only the owner or an admin can change who sees connection {connection.name!r}"
        )
    if changes.name is not None:
        _ensure_name_free(db, changes.name, except_id=connection.id)

    current = Credentials.of(connection)
    datacenter, base_url = current.datacenter, current.base_url
    if changes.datacenter is not None:
        datacenter, base_url = changes.datacenter, None
    elif changes.base_url is not None:
        datacenter, base_url = None, changes.base_url
    api_token = current.api_token
    client_id, client_secret, scope = (
        current.oauth_client_id,
        current.oauth_client_secret,
        current.oauth_scope,
    )
    if changes.api_token is not None:
        api_token, client_id, client_secret, scope = changes.api_token, None, None, None
    elif changes.oauth_client_id is not None or changes.oauth_client_secret is not None:
        api_token = None
        client_id = changes.oauth_client_id or client_id
        client_secret = changes.oauth_client_secret or client_secret
        if not (client_id and client_secret):
            raise InvalidConnection("OAuth needs both oauth_client_id and oauth_client_secret")
    if changes.oauth_scope is not None:
        if not client_id:
            raise InvalidConnection("oauth_scope only applies to OAuth connections")
        scope = changes.oauth_scope
    updated = Credentials(
        datacenter=datacenter,
        base_url=base_url,
        api_token=api_token,
        oauth_client_id=client_id,
        oauth_client_secret=client_secret,
        oauth_scope=scope,
    )

    identity = None
    if changes.touches_credentials:
        for secret in (changes.api_token, changes.oauth_client_secret):
            register_secret(secret)
        identity = await check_credentials(updated)

    connection.datacenter = updated.datacenter
    connection.base_url = updated.base_url
    connection.api_token = updated.api_token
    connection.oauth_client_id = updated.oauth_client_id
    connection.oauth_client_secret = updated.oauth_client_secret
    connection.oauth_scope = updated.oauth_scope
    connection.auth_type = "oauth" if updated.oauth_client_id else "token"
    if identity is not None:
        apply_identity(connection, identity)
    if changes.name is not None:
        connection.name = changes.name
    if changes.username is not None:
        connection.username = changes.username or None
    if changes.shared is not None:
        connection.shared = changes.shared
    if changes.requests_per_minute is not None:
        connection.requests_per_minute = changes.requests_per_minute
    connection.updated_at = utcnow()
    _flush(db, connection.name)
    invalidate_clients(connection.id)
    return identity


async def revalidate_connection(db: Session, connection: Connection) -> Identity:
    """Run ``whoami`` again with the stored credentials and record what it resolved to."""
    identity = await check_credentials(
        Credentials.of(connection),
        rate_limiter=limiter_for(connection.id, connection.requests_per_minute),
        max_rate_limit_wait=INTERACTIVE_RATE_LIMIT_WAIT,
    )
    apply_identity(connection, identity)
    db.flush()
    return identity


def delete_connection(db: Session, connection: Connection) -> None:
    """Delete the connection, or raise :class:`ConnectionInUse` naming what still uses it."""
    usages = connection_usages(db, connection.id)
    if usages:
        listed = ", ".join(usages)
        raise ConnectionInUse(
            f"connection {connection.name!r} is used by {listed}; "
            "delete those or switch them to another connection first",
            usages,
        )
    invalidate_clients(connection.id)
    forget_connection(db, connection.id)
    db.delete(connection)
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        raise ConnectionInUse(
            f"connection {connection.name!r} is still referenced by other records", []
        ) from None
