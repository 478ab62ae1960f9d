"""A broken export download surfaces as a client error, never as a bare httpx exception."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from qualflow.qualtrics import AsyncClient, Client, UnexpectedResponse, Unlimited

BASE_URL = "https://acme.qualtrics.com"


def _corrupt_gzip(request: httpx.Request) -> httpx.Response:
    # Declared gzip, but the body is not: httpx fails while decoding the stream.
    return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"not gzip at all")


def test_sync_download_with_a_corrupt_encoding_is_an_unexpected_response(tmp_path: Path) -> None:
    dest = tmp_path / "export.zip"
    client = Client(
        base_url=BASE_URL,
        api_token="token",
        transport=httpx.MockTransport(_corrupt_gzip),
        rate_limiter=Unlimited(),
    )
    with client, pytest.raises(UnexpectedResponse) as info:
        client.exports.download("SV_1", "file-1", dest)
    assert "/file" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_async_download_with_a_corrupt_encoding_is_an_unexpected_response(tmp_path: Path) -> None:
    dest = tmp_path / "export.zip"

    async def download() -> None:
        async with AsyncClient(
            base_url=BASE_URL,
            api_token="token",
            transport=httpx.MockTransport(_corrupt_gzip),
            rate_limiter=Unlimited(),
        ) as client:
            await client.exports.download("SV_1", "file-1", dest)

    with pytest.raises(UnexpectedResponse) as info:
        anyio.run(download)
    assert "/file" in str(info.value)
    assert list(tmp_path.iterdir()) == []
