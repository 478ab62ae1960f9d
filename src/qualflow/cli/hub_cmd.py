"""Hub commands: ``migrate``, ``users``, ``secrets``, ``connections``.

They work on the database the settings point at (``QUALFLOW_*``), directly, without a running
server. Bad input ends with a one-line ``error: …`` on stderr and exit code 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from qualflow.accounts.errors import AccountError
from qualflow.accounts.permissions import Role
from qualflow.cli.common import (
    EXIT_USAGE,
    MAX_ID,
    fail,
    hub_store,
    load_settings,
    one_line,
    print_listing,
    register_actions,
    secret_from_stdin,
    shown_url,
)
from qualflow.connections.errors import ConnectionNotFound, ConnectionsError
from qualflow.connections.limits import DEFAULT_REQUESTS_PER_MINUTE
from qualflow.validation import describe_errors

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qualflow.accounts.models import User
    from qualflow.connections.models import Connection

__all__ = ["app"]

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True)
users_app = typer.Typer(no_args_is_help=True, help="People who use the hub.")
secrets_app = typer.Typer(no_args_is_help=True, help="Encryption keys of stored secrets.")
connections_app = typer.Typer(no_args_is_help=True, help="Named Qualtrics connections.")
app.add_typer(users_app, name="users")
app.add_typer(secrets_app, name="secrets")
app.add_typer(connections_app, name="connections")

_out = Console()


def _guard(call: Callable[[], T]) -> T:
    from sqlalchemy.exc import SQLAlchemyError

    from qualflow.store.secrets import SecretDecryptionError, SecretKeyError

    try:
        return call()
    except (AccountError, ConnectionsError) as exc:
        fail(exc.message)
    except (SecretKeyError, SecretDecryptionError) as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        fail(f"database error: {one_line(exc)}")


# --- migrate ------------------------------------------------------------------------------------


@app.command("migrate")
def migrate_command(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Upgrade the database schema (creates it on first run)."""
    from qualflow.store.migrate import current_revision, known_revisions, migrate

    settings = load_settings()
    known = known_revisions()
    if revision != "head" and revision not in known:
        fail(f"unknown revision {revision!r}: give head or one of {', '.join(known)}")
    if settings.is_sqlite:
        try:
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"cannot create the data directory {settings.data_dir}: {exc.strerror or exc}")
    shown = shown_url(settings.database_url)
    before = _guard(lambda: current_revision(settings.database_url))
    target = known[-1] if revision == "head" else revision
    if before in known and known.index(before) > known.index(target):
        fail(
            f"{shown} is at revision {before}, newer than {target}; "
            "`qualflow migrate` only upgrades"
        )
    _guard(lambda: migrate(settings.database_url, revision))
    after = current_revision(settings.database_url)
    if before == after:
        typer.echo(f"{shown} is up to date (revision {after}).")
    else:
        typer.echo(f"{shown} migrated from {before or 'empty'} to revision {after}.")


# --- users --------------------------------------------------------------------------------------


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Sign-in email address.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    role: Annotated[Role, typer.Option(case_sensitive=False, help="Role.")] = Role.ADMIN,
    password: Annotated[
        str | None,
        typer.Option(help="Password (prefer --generate-password or the prompt: shell history)."),
    ] = None,
    generate: Annotated[
        bool, typer.Option("--generate-password", help="Generate a password and print it once.")
    ] = False,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="API-token-only user (cannot sign in).")
    ] = False,
) -> None:
    """Create a person, e.g. the first admin."""
    from qualflow.accounts.passwords import generate_password
    from qualflow.accounts.users import create_user

    if sum([password is not None, generate, no_password]) > 1:
        fail("give only one of --password, --generate-password and --no-password")
    secret: str | None = password
    if generate:
        secret = generate_password()
    elif secret is None and not no_password:
        if not sys.stdin.isatty():
            fail("no password given: use --password, --generate-password or --no-password")
        secret = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    with hub_store() as store, store.sessionmaker() as session:

        def create() -> User:
            user = create_user(session, email=email, name=name, role=role, password=secret)
            session.flush()
            typer.echo(f"created {user.role} {user.email} (id {user.id})")
            if generate:
                # Shown before the commit: a password that cannot be shown (a full disk under
                # stdout) leaves nobody created, not an account nobody knows the password of.
                typer.echo(f"password: {secret}  (shown once; store it now)")
            session.commit()
            return user

        _guard(create)


@users_app.command("ls")
def users_ls(as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False) -> None:
    """List people."""
    from qualflow.accounts.users import list_users
    from qualflow.web.api.accounts import UserOut

    with hub_store() as store, store.sessionmaker() as session:
        users = _guard(lambda: list(list_users(session)))
        # Each row named as GET /api/v1/users names its items, so one script reads both (the CLI
        # prints every row, so no page envelope); can_sign_in is what this listing called
        # has_password first.
        rows = [
            {
                **UserOut.of(user).model_dump(mode="json"),
                "can_sign_in": user.password_hash is not None,
            }
            for user in users
        ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "email", "name", "role", "active", "last sign-in")
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["email"]),
            str(row["name"]),
            str(row["role"]),
            "yes" if row["active"] else "no",
            str(row["last_login_at"] or "never"),
        )
    print_listing(
        _out,
        table,
        "No users yet: create the first admin with qualflow users create --email … --name … "
        "--generate-password.",
    )


# --- secrets ------------------------------------------------------------------------------------


@secrets_app.command("rotate")
def secrets_rotate(
    new_key: Annotated[
        str | None, typer.Option(help="Use this Fernet key instead of generating one.")
    ] = None,
    retire_old: Annotated[
        bool,
        typer.Option("--retire-old", help="Drop the old keys once everything is re-encrypted."),
    ] = False,
) -> None:
    """Put a new key first and re-encrypt every stored secret with it (one transaction)."""
    from sqlalchemy.exc import SQLAlchemyError

    from qualflow.store.base import Base
    from qualflow.store.models_registry import load_all
    from qualflow.store.secrets import (
        SecretBox,
        SecretKeyError,
        load_or_create_keys,
        rotate_database,
        write_keys_file,
    )
    from qualflow.web.api.step_secrets import reseal_definitions

    settings = load_settings()
    if new_key is not None and not new_key.strip():
        fail("--new-key is empty: give a Fernet key, or leave the option out to generate one")
    if new_key is not None:
        try:
            SecretBox([new_key.strip()])
        except SecretKeyError:
            fail("--new-key is not a valid Fernet key (32 url-safe base64 bytes)")
    try:
        keys, source = load_or_create_keys(settings)
        if new_key is not None and new_key.strip() in keys:
            fail("--new-key is already one of the keys: give a new one, or leave it out")
        new_box = SecretBox([new_key.strip() if new_key else SecretBox.generate_key(), *keys])
    except (SecretKeyError, OSError) as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        fail(f"cannot open the database: {one_line(exc)}")
    newest = new_box.keys[0]
    if source == "file":
        # Saved before re-encrypting: whatever happens next, the file opens old and new rows.
        write_keys_file(settings.secret_keys_file, new_box.keys)
    else:
        typer.echo(
            "New key list (old keys kept); set it before restarting any qualflow process:\n"
            f"QUALFLOW_SECRET_KEYS={','.join(new_box.keys)}"
        )
    load_all()
    register_actions()
    try:
        with hub_store() as store:

            def rotate() -> dict[str, int]:
                with store.engine.begin() as connection:
                    counts = dict(rotate_database(connection, new_box, Base.metadata).columns)
                    counts["automation step secrets"] = reseal_definitions(connection, new_box)
                    return counts

            counts = _guard(rotate)
    except typer.Exit:
        if source == "file":
            # Nothing was re-encrypted (one transaction): the new key is not needed.
            write_keys_file(settings.secret_keys_file, keys)
        raise
    total = sum(counts.values())
    for label, count in counts.items():
        typer.echo(f"  {label}: {count} re-encrypted")
    typer.echo(f"re-encrypted {total} secret(s) with key ••••{newest[-4:]}")
    if retire_old:
        if source == "file":
            write_keys_file(settings.secret_keys_file, [newest])
            typer.echo(f"old keys removed from {settings.secret_keys_file}")
        else:
            typer.echo(f"old keys may now be dropped: QUALFLOW_SECRET_KEYS={newest}")
    elif source == "file":
        typer.echo(f"{settings.secret_keys_file} now holds {len(new_box.keys)} keys, newest first")


# --- connections --------------------------------------------------------------------------------


def _connection_row(connection: Connection, owners: dict[int, str]) -> dict[str, Any]:
    from qualflow.store.secrets import mask

    return {
        "id": connection.id,
        "name": connection.name,
        "location": connection.datacenter or connection.base_url,
        "auth": connection.auth_type,
        "credential": mask(connection.api_token or connection.oauth_client_secret),
        "brand": connection.brand_id,
        "qualtrics_user": connection.qualtrics_user_name or connection.qualtrics_user_id,
        "owner": owners.get(connection.owner_id) if connection.owner_id else None,
        "shared": connection.shared,
        "validated_at": connection.validated_at.isoformat() if connection.validated_at else None,
    }


@connections_app.command("ls")
def connections_ls(
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """List every connection (credentials masked)."""
    from sqlalchemy import select

    from qualflow.accounts.users import list_users
    from qualflow.connections.models import Connection

    with hub_store() as store, store.sessionmaker() as session:

        def load() -> list[dict[str, Any]]:
            owners = {user.id: user.email for user in list_users(session)}
            connections = session.scalars(select(Connection).order_by(Connection.name)).all()
            return [_connection_row(connection, owners) for connection in connections]

        rows = _guard(load)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "name", "location", "auth", "credential", "brand", "user", "shared")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["name"],
            str(row["location"]),
            row["auth"],
            row["credential"],
            str(row["brand"]),
            str(row["qualtrics_user"]),
            "yes" if row["shared"] else "no",
        )
    print_listing(
        _out,
        table,
        "No connections yet: add one with qualflow connections add --name … --datacenter … "
        "--api-token-stdin.",
    )


def _owner_id(session: Session, owner: str | None) -> int | None:
    from qualflow.accounts.users import get_user_by_email

    if owner is None:
        return None
    user = get_user_by_email(session, owner)
    if user is None:
        fail(f"no user with email {owner}")
    return user.id


@connections_app.command("add")
def connections_add(
    name: Annotated[str, typer.Option(help="Unique name of the connection.")],
    datacenter: Annotated[str | None, typer.Option(help="Datacenter id, e.g. iad1.")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="Brand host or sandbox URL instead of a datacenter.")
    ] = None,
    api_token: Annotated[
        str | None,
        typer.Option(help="Qualtrics API token (omit to be prompted, or use --api-token-stdin)."),
    ] = None,
    api_token_stdin: Annotated[
        bool, typer.Option("--api-token-stdin", help="Read the API token from stdin.")
    ] = False,
    oauth_client_id: Annotated[str | None, typer.Option(help="OAuth client id.")] = None,
    oauth_client_secret: Annotated[str | None, typer.Option(help="OAuth client secret.")] = None,
    oauth_scope: Annotated[str | None, typer.Option(help="OAuth scopes (space separated).")] = None,
    username: Annotated[
        str | None, typer.Option(help="Qualtrics login name (JSON-event Basic auth).")
    ] = None,
    owner: Annotated[str | None, typer.Option(help="Owner's email (default: none).")] = None,
    shared: Annotated[bool, typer.Option(help="Visible to the whole workspace.")] = True,
    requests_per_minute: Annotated[
        int, typer.Option(help="Qualtrics requests per minute for this connection.")
    ] = DEFAULT_REQUESTS_PER_MINUTE,
) -> None:
    """Add a connection after checking its credentials with Qualtrics (whoami)."""
    from qualflow.connections.service import MAX_SECRET_LENGTH, ConnectionSpec, create_connection

    if api_token_stdin and api_token is not None:
        fail("give the API token with --api-token or --api-token-stdin, not both", EXIT_USAGE)
    if api_token_stdin:
        api_token = secret_from_stdin("API token", "--api-token-stdin", MAX_SECRET_LENGTH)
    elif api_token is None and oauth_client_id is None:
        if not sys.stdin.isatty():
            fail("no credentials given: use --api-token, --api-token-stdin or --oauth-client-id")
        api_token = typer.prompt("Qualtrics API token", hide_input=True)
    try:
        spec = ConnectionSpec(
            name=name,
            datacenter=datacenter,
            base_url=base_url,
            api_token=api_token or None,
            oauth_client_id=oauth_client_id,
            oauth_client_secret=oauth_client_secret,
            oauth_scope=oauth_scope,
            username=username,
            shared=shared,
            requests_per_minute=requests_per_minute,
        )
    except ValidationError as exc:
        fail(describe_errors(exc))
    with hub_store() as store, store.sessionmaker() as session:
        owner_id = _owner_id(session, owner)

        async def add() -> tuple[Connection, Any]:
            return await create_connection(session, spec, owner_id=owner_id)

        connection, identity = _guard(lambda: anyio.run(add))
        session.commit()
        typer.echo(
            f"added connection {connection.name!r} (id {connection.id}): brand "
            f"{identity.brand_id}, user {identity.user_name or identity.user_id}"
        )


@connections_app.command("test")
def connections_test(
    connection: Annotated[str, typer.Argument(help="Connection name or id.")],
) -> None:
    """Check a saved connection's credentials with Qualtrics (whoami) and record the result."""
    from sqlalchemy import select

    from qualflow.connections.models import Connection
    from qualflow.connections.service import revalidate_connection

    with hub_store() as store, store.sessionmaker() as session:

        def find() -> Connection:
            query = select(Connection).where(Connection.name == connection)
            found = session.scalar(query)
            if found is None and connection.isascii() and connection.isdigit():
                number = int(connection)
                found = session.get(Connection, number) if number <= MAX_ID else None
            if found is None:
                raise ConnectionNotFound(f"no connection named {connection!r}")
            return found

        row = _guard(find)

        async def check() -> Any:
            return await revalidate_connection(session, row)

        identity = _guard(lambda: anyio.run(check))
        session.commit()
        typer.echo(
            f"{row.name}: ok — brand {identity.brand_id}, user "
            f"{identity.user_name or identity.user_id} ({identity.user_id}), "
            f"datacenter {identity.datacenter}"
        )
