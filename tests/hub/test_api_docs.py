"""The API reference pages of the hub and the sandbox load nothing from outside the app."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from qualflow.sandbox import create_app as create_sandbox_app

_ASSET = re.compile(r'(?:src|href|url)\s*[=:]\s*["\']([^"\']+)["\']')


def _assert_self_contained(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assets = _ASSET.findall(page.text)
    assert assets, page.text
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is not served by the app"
        assert client.get(asset).status_code == 200, asset
    assert "swagger-ui-bundle.js" not in page.text  # not FastAPI's CDN page
    assert client.get("/docs/oauth2-redirect").status_code == 200
    schema = re.search(r"url: '([^']+)'", page.text)
    assert schema
    assert client.get(schema.group(1)).status_code == 200


def test_the_hub_serves_its_api_reference_itself(client: TestClient) -> None:
    _assert_self_contained(client)
    assert client.get("/redoc").status_code == 404


def test_the_sandbox_serves_its_api_reference_itself() -> None:
    with TestClient(create_sandbox_app()) as sandbox:
        _assert_self_contained(sandbox)
        assert sandbox.get("/openapi.json").json()["paths"]["/_sandbox/respond"]
