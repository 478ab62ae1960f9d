"""A client used after it was closed (close(), or the end of its ``with`` block) says so as a
qualflow error that names what to do, not httpx's "Cannot send a request, as the client has
been closed."."""

from __future__ import annotations

import anyio
import httpx
import pytest

from qualflow.qualtrics import AsyncClient, Client
from qualflow.qualtrics import errors as E
from qualflow.qualtrics.transports import SyncASGITransport
from qualflow.sandbox import SandboxState, create_app


@pytest.fixture
def sandbox() -> tuple[object, str]:
    state = SandboxState()
    _user, token = state.create_user("closed@example.com")
    return create_app(state), token


def test_a_closed_client_refuses_calls_as_a_qualtrics_error(sandbox: tuple[object, str]) -> None:
    app, token = sandbox
    with Client(
        base_url="http://sandbox.test", api_token=token, transport=SyncASGITransport(app)
    ) as client:
        assert client.whoami().user_id
    with pytest.raises(E.ClientClosed, match="closed") as raised:
        client.whoami()
    assert isinstance(raised.value, E.QualtricsError)
    assert isinstance(raised.value, RuntimeError)  # what httpx raised before, still caught


def test_a_closed_async_client_refuses_calls_as_a_qualtrics_error(
    sandbox: tuple[object, str],
) -> None:
    app, token = sandbox

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with AsyncClient(
            base_url="http://sandbox.test", api_token=token, transport=transport
        ) as client:
            assert (await client.whoami()).user_id
        with pytest.raises(E.ClientClosed, match="closed"):
            await client.whoami()

    anyio.run(main)
