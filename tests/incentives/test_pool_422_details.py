"""REST: every 422 of the gift-code pool endpoints that refuses one field names it in ``details``
(shaped as FastAPI's own 422); one about the whole CSV body names no field, as no field of the
request carries the file, and says which line it is about when one is."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.incentives.support import Person

POOLS = "/api/v1/incentives/providers/gift-code-pools"
HEADER = "code,value,currency,expiry"


def refused(answer: Any, code: str, field: str) -> str:
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == code, answer.text
    # FastAPI's own 422 adds each problem's type: the fields named are what is compared.
    details = error.get("details") or []
    assert [(d["field"], bool(d["message"])) for d in details] == [(field, True)], answer.text
    return str(error["message"])


def refused_file(answer: Any) -> str:
    """A 422 about the whole file: no field carries it, so no ``details``."""
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] in ("invalid_csv", "validation_error"), answer.text
    assert "details" not in error, answer.text
    return str(error["message"])


def import_csv(hub: TestClient, admin: Person, pool_id: int, body: bytes) -> Any:
    return hub.post(
        f"{POOLS}/{pool_id}/codes",
        content=body,
        headers={**admin.headers, "Content-Type": "text/csv"},
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "   "}, "name"),  # blank once trimmed: the manager refuses it, not the schema
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "ok", "description": "x" * 100_000}, "description"),
        ({"description": "no name"}, "name"),
    ],
)
def test_a_refused_pool_field_is_named(
    hub: TestClient, admin: Person, body: dict[str, str], field: str
) -> None:
    answer = hub.post(POOLS, json=body, headers=admin.headers)

    code = "invalid_pool" if body.get("name") == "   " else "validation_error"
    refused(answer, code, field)
    assert hub.get(POOLS, headers=admin.headers).json()["items"] == []


def test_a_blank_name_says_the_pool_needs_one(hub: TestClient, admin: Person) -> None:
    answer = hub.post(POOLS, json={"name": " \t "}, headers=admin.headers)

    assert refused(answer, "invalid_pool", "name") == "the pool needs a name"


def test_a_taken_name_is_a_conflict_with_the_pool_named(hub: TestClient, admin: Person) -> None:
    assert hub.post(POOLS, json={"name": "Amazon"}, headers=admin.headers).status_code == 201

    answer = hub.post(POOLS, json={"name": "Amazon"}, headers=admin.headers)

    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["code"] == "conflict"
    assert "'Amazon' exists already" in error["message"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "the CSV is empty"),
        (b"\n\n", "the CSV is empty"),
        (b"\xff\xfe not text", "must be UTF-8 text"),
        (b"code;value;currency\nA-1;10.00;USD\n", "separated by semicolons"),
        (b"name,amount\nA-1,10.00\n", "missing: code, value, currency"),
    ],
)
def test_a_csv_that_is_not_one_is_refused_as_a_whole(
    hub: TestClient, admin: Person, body: bytes, says: str
) -> None:
    pool = hub.post(POOLS, json={"name": "Whole file"}, headers=admin.headers).json()

    assert says in refused_file(import_csv(hub, admin, pool["id"], body))


def test_a_line_the_csv_reader_cannot_read_is_named(hub: TestClient, admin: Person) -> None:
    pool = hub.post(POOLS, json={"name": "Unreadable"}, headers=admin.headers).json()
    # A cell past the csv module's field limit: the reader stops reading the file there.
    too_long = '"' + "x" * 200_000 + '"'
    body = f"{HEADER}\nA-1,10.00,USD,\nB-2,10.00,USD,\n{too_long},10.00,USD,\n".encode()

    message = refused_file(import_csv(hub, admin, pool["id"], body))

    assert "after line 3" in message, message
    assert hub.get(f"{POOLS}/{pool['id']}", headers=admin.headers).json()["stock"] == []


def test_a_line_with_a_bad_value_or_currency_is_named_and_the_rest_imported(
    hub: TestClient, admin: Person
) -> None:
    # One bad line does not refuse the file: it is listed, the good lines are imported.
    pool = hub.post(POOLS, json={"name": "Lines"}, headers=admin.headers).json()
    body = f"{HEADER}\nA-1,10.00,USD,\nB-2,ten,USD,\nC-3,10.00,U1,\nD-4,-1.00,USD,\n".encode()

    answer = import_csv(hub, admin, pool["id"], body)

    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["imported"] == 1
    assert [error.split(":", 1)[0] for error in report["errors"]] == ["line 3", "line 4", "line 5"]


def test_an_import_into_a_missing_pool_is_a_404(hub: TestClient, admin: Person) -> None:
    answer = import_csv(hub, admin, 999_999, f"{HEADER}\nA-1,10.00,USD,\n".encode())

    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "not_found"
