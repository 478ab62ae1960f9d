"""Clients for connections: one rate limiter per connection, cached clients for the engine."""

from __future__ import annotations

import anyio
import pytest
from sqlalchemy.orm import Session

from qualflow.accounts.permissions import ROLE_GRANTS, Role
from qualflow.accounts.principal import Principal
from qualflow.connections.clients import (
    Credentials,
    client_factory,
    client_for,
    configure_clients,
    limiter_for,
)
from qualflow.connections.errors import ConnectionNotFound, InvalidConnection
from qualflow.connections.models import Connection
from qualflow.connections.service import ConnectionChanges, update_connection
from qualflow.store.runtime import Store
from tests.hub.conftest import Sandbox


def _connection(
    db: Session, sandbox: Sandbox, *, token: str | None = None, rpm: int = 3000
) -> Connection:
    connection = Connection(
        name=f"conn-{rpm}-{token or 'admin'}"[:200],
        base_url=sandbox.base_url,
        auth_type="token",
        api_token=token or sandbox.admin_token,
        requests_per_minute=rpm,
    )
    db.add(connection)
    db.commit()
    return connection


def test_clients_of_one_connection_share_one_limiter(db: Session, sandbox: Sandbox) -> None:
    first = _connection(db, sandbox, rpm=1200)
    second = _connection(db, sandbox, rpm=600)
    a, b, c = client_for(first), client_for(first), client_for(second)
    assert a.rate_limiter is b.rate_limiter
    assert a.rate_limiter is limiter_for(first.id, 1200)
    assert a.rate_limiter is not c.rate_limiter
    assert a.rate_limiter.requests_per_minute == 1200
    assert c.rate_limiter.requests_per_minute == 600
    # A new rate retunes the connection's one limiter: old and new clients share one budget.
    assert limiter_for(first.id, 900) is a.rate_limiter
    assert a.rate_limiter.requests_per_minute == 900
    assert client_for(first).rate_limiter is a.rate_limiter


def test_credentials_need_exactly_one_way_to_authenticate() -> None:
    with pytest.raises(InvalidConnection, match="required"):
        Credentials(base_url="http://x").client_kwargs()
    with pytest.raises(InvalidConnection, match="not both"):
        Credentials(
            base_url="http://x", api_token="t", oauth_client_id="i", oauth_client_secret="s"
        ).client_kwargs()
    with pytest.raises(InvalidConnection, match="both a client id and a client secret"):
        Credentials(base_url="http://x", oauth_client_id="i").client_kwargs()


def test_factory_caches_per_loop_and_rebuilds_after_an_edit(store: Store, sandbox: Sandbox) -> None:
    configure_clients(transport=sandbox.transport)
    with store.sessionmaker() as db:
        connection = _connection(db, sandbox)
        connection_id = connection.id
    other, other_token = sandbox.state.create_user("other@example.org")
    factory = client_factory(store.sessionmaker)
    admin = Principal(
        user_id=0,
        email="a@example.org",
        name="A",
        role=Role.ADMIN,
        grants=ROLE_GRANTS[Role.ADMIN],
        via="token",
    )

    async def scenario() -> None:
        first = await factory(connection_id)
        assert await factory(connection_id) is first
        assert (await first.whoami()).user_id == sandbox.admin_user_id
        with store.sessionmaker() as db:
            row = db.get(Connection, connection_id)
            assert row is not None
            await update_connection(db, admin, row, ConnectionChanges(api_token=other_token))
            db.commit()
        rebuilt = await factory(connection_id)
        assert rebuilt is not first
        assert (await rebuilt.whoami()).user_id == other.id
        assert rebuilt.rate_limiter is first.rate_limiter
        with pytest.raises(ConnectionNotFound):
            await factory(connection_id + 1000)
        await factory.aclose_loop()

    anyio.run(scenario)


def test_runs_starting_at_once_share_one_client_and_one_connection_read(
    store: Store, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure_clients(transport=sandbox.transport)
    with store.sessionmaker() as db:
        connection_id = _connection(db, sandbox).id
    factory = client_factory(store.sessionmaker)
    loads: list[int] = []
    load = factory._load

    def counted_load(connection_id: int) -> tuple[Credentials, int]:
        loads.append(connection_id)
        return load(connection_id)

    monkeypatch.setattr(factory, "_load", counted_load)

    async def scenario() -> None:
        clients = []

        async def one() -> None:
            clients.append(await factory(connection_id))

        async with anyio.create_task_group() as group:
            for _ in range(40):
                group.start_soon(one)
        assert len({id(client) for client in clients}) == 1
        assert loads == [connection_id]
        await factory.aclose_loop()
        assert clients[0]._http.is_closed

    anyio.run(scenario)


def test_every_client_shares_one_tls_context(db: Session, sandbox: Sandbox) -> None:
    from qualflow.qualtrics import AsyncClient, Client
    from qualflow.tls import verified_context

    connection = _connection(db, sandbox)
    configure_clients(transport=None)
    contexts = {
        id(client._http._transport._pool._ssl_context)  # type: ignore[attr-defined]
        for client in (
            client_for(connection),
            client_for(connection),
            AsyncClient(base_url="https://acme.qualtrics.com", api_token="t"),
            Client(base_url="https://acme.qualtrics.com", api_token="t"),
        )
    }
    assert contexts == {id(verified_context())}
