"""Every UI page or action named by a numeric id answers a page, never a server error, for an
id the database cannot hold, a negative one, or one that does not exist."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from qualflow.settings import Settings
from qualflow.web.app import create_app
from tests.browser.ui_support import csrf_token, sign_in

HUGE = "1" + "0" * 30

PAGES = [
    "/automations/{id}",
    "/automations/{id}/edit",
    "/automations/{id}/versions/1",
    "/automations/1/versions/{id}",
    "/connections/{id}",
    "/connections/{id}/surveys",
    "/connections/{id}/edit",
    "/outbox/{id}",
]
ACTIONS = [
    "/automations/{id}/edit",
    "/automations/{id}/enable",
    "/automations/{id}/disable",
    "/automations/{id}/run",
    "/automations/{id}/rotate-token",
    "/automations/{id}/delete",
    "/connections/{id}/edit",
    "/connections/{id}/revalidate",
    "/connections/{id}/delete",
    "/people/{id}/role",
    "/people/{id}/active",
    "/account/tokens/{id}/revoke",
]


@pytest.fixture
def browser(ui_settings: Settings, ui_people: dict[str, str]) -> Iterator[TestClient]:
    """A signed-in admin whose server errors come back as responses, to be counted."""
    app = create_app(ui_settings, engine="off")
    with TestClient(
        app, base_url="http://127.0.0.1:8000", follow_redirects=False,
        raise_server_exceptions=False,
    ) as client:  # fmt: skip
        sign_in(client, "admin")
        yield client


@pytest.mark.parametrize("row_id", [HUGE, "-1", "0", "999999"])
def test_unknown_ids_are_not_found_pages(browser: TestClient, row_id: str) -> None:
    ui_client = browser
    token = csrf_token(ui_client, "/")
    answers = {path: ui_client.get(path.format(id=row_id)) for path in PAGES}
    answers.update(
        (f"POST {path}", ui_client.post(path.format(id=row_id), data={"csrf_token": token}))
        for path in ACTIONS
    )
    not_pages = {
        path: answer.status_code
        for path, answer in answers.items()
        if answer.status_code != 404 or "text/html" not in answer.headers["content-type"]
    }
    assert not_pages == {}
    assert "does not exist" in answers["/automations/{id}"].text


def test_an_id_that_is_not_a_number_is_a_not_found_page(browser: TestClient) -> None:
    token = csrf_token(browser, "/")
    page = browser.get("/automations/abc")
    action = browser.post("/connections/abc/delete", data={"csrf_token": token})
    for answer in (page, action):
        assert answer.status_code == 404
        assert "text/html" in answer.headers["content-type"]
    assert "/automations/abc does not exist." in page.text
