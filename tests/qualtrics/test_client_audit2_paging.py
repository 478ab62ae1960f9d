"""Listing XM Directory contacts asks for the skipToken paging scheme Qualtrics documents for
it (``useNewPaginationScheme=true``, research notes §7.1), on every page, against the sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from qualflow.qualtrics import Client, Unlimited
from qualflow.qualtrics.transports import SyncASGITransport
from qualflow.sandbox import create_app
from qualflow.sandbox.state import SandboxConfig, SandboxState


class RecordingTransport(httpx.BaseTransport):
    """The sandbox answers; the URLs the client asked for are kept."""

    def __init__(self, inner: SyncASGITransport) -> None:
        self.inner = inner
        self.urls: list[httpx.URL] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(request.url)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def client_and_requests() -> Iterator[tuple[Client, RecordingTransport]]:
    state = SandboxState(SandboxConfig(page_size=3))
    _, token = state.create_user("audit2@example.com")
    transport = RecordingTransport(SyncASGITransport(create_app(state)))
    client = Client(
        api_token=token,
        base_url="http://sandbox.test",
        transport=transport,
        rate_limiter=Unlimited(),
    )
    try:
        yield client, transport
    finally:
        client.close()
        transport.close()


def test_directory_contacts_are_listed_with_the_new_pagination_scheme(
    client_and_requests: tuple[Client, RecordingTransport],
) -> None:
    client, transport = client_and_requests
    pool = client.directories.list()[0].directory_id
    created = {client.contacts.create(pool, email=f"c{i}@example.org").id for i in range(5)}

    transport.urls.clear()
    listed = {contact.contact_id for contact in client.contacts.iter(pool, page_size=2)}

    assert listed == created
    contact_pages = [url for url in transport.urls if url.path.endswith("/contacts")]
    assert len(contact_pages) == 3
    for url in contact_pages:
        assert url.params.get("useNewPaginationScheme") == "true"
        assert url.params.get("pageSize") == "2"
