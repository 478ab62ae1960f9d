"""The incentive form keeps the numbers people type: 0 stays 0, blank takes the default, and a
value out of range is refused with the field's error, never silently replaced."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.incentives.support import Person
from tests.incentives.test_pages import INCENTIVE_FIELDS, form, sign_in

MakePerson = Callable[..., Person]
THRESHOLDS = (
    "recaptcha_threshold", "duplicate_threshold", "fraud_threshold", "shared_email_threshold",
    "shared_ip_threshold", "low_stock_threshold",
)  # fmt: skip
MANUAL = {**INCENTIVE_FIELDS, "provider": "manual"}


def create(hub: TestClient, token: str, **fields: str) -> Any:
    return hub.post("/incentives/new", data=form(token, **{**MANUAL, **fields}))


def stored(hub: TestClient, admin: Person, page: Any) -> dict[str, Any]:
    assert page.status_code == 200, page.text
    reference = re.search(r"Incentive (INC-[A-Z0-9]{6}) created", page.text)
    assert reference, page.text[:500]
    answer = hub.get(f"/api/v1/incentives/{reference.group(1)}", headers=admin.headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def thresholds(incentive: dict[str, Any]) -> dict[str, float]:
    rules = incentive["fraud_rules"]
    return {
        "recaptcha": rules["recaptcha"]["threshold"],
        "duplicate": rules["relevant_id_duplicate"]["threshold"],
        "fraud": rules["relevant_id_fraud"]["threshold"],
        "shared_email": rules["shared_email"]["threshold"],
        "shared_ip": rules["shared_ip"]["threshold"],
        "low_stock": incentive["low_stock_threshold"],
    }


def field_error(page: Any, name: str) -> str:
    """The error shown under ``name`` (the form macro's ``{name}-error`` element)."""
    found = re.search(rf'id="{name}-error"[^>]*>([^<]*)<', page.text)
    assert found, f"no error under {name}"
    return html.unescape(found.group(1)).strip()


def test_zero_thresholds_are_kept(hub: TestClient, make_person: MakePerson) -> None:
    admin = make_person("admin")
    token = sign_in(hub, admin)
    page = create(
        hub, token, recaptcha_threshold="0", duplicate_threshold="0", fraud_threshold="0",
        low_stock_threshold="0",
    )  # fmt: skip
    assert thresholds(stored(hub, admin, page)) == {
        "recaptcha": 0, "duplicate": 0, "fraud": 0, "shared_email": 3, "shared_ip": 3,
        "low_stock": 0,
    }  # fmt: skip


def test_blank_thresholds_take_the_documented_defaults(
    hub: TestClient, make_person: MakePerson
) -> None:
    admin = make_person("admin")
    token = sign_in(hub, admin)
    blank = dict.fromkeys(THRESHOLDS, "")
    incentive = stored(hub, admin, create(hub, token, **blank))
    # The defaults an incentive made through REST gets.
    assert thresholds(incentive) == {
        "recaptcha": 0.5, "duplicate": 75, "fraud": 30, "shared_email": 3, "shared_ip": 3,
        "low_stock": 10,
    }  # fmt: skip
    # The form says so beside each field.
    page = html.unescape(hub.get("/incentives/new").text)
    for default in ("Empty: 0.5.", "Empty: 75.", "Empty: 30.", "Empty: 3."):
        assert default in page
    assert "Empty: 10. 0 turns the low-stock warning off." in page


def test_out_of_range_thresholds_are_refused_with_the_fields_error(
    hub: TestClient, make_person: MakePerson
) -> None:
    admin = make_person("admin")
    token = sign_in(hub, admin)
    page = create(
        hub, token, recaptcha_threshold="1.5", duplicate_threshold="100.5",
        fraud_threshold="-1", shared_email_threshold="0", shared_ip_threshold="nan",
        low_stock_threshold="-1",
    )  # fmt: skip
    assert page.status_code == 400
    assert field_error(page, "recaptcha_threshold") == "Enter a number from 0 to 1."
    assert field_error(page, "duplicate_threshold") == "Enter a number from 0 to 100."
    assert field_error(page, "fraud_threshold") == "Enter a number of at least 0."
    assert field_error(page, "shared_ip_threshold") == "Enter a number."
    assert 'value="1.5"' in page.text  # kept for correcting
    # The counts are judged by the incentive's own bounds, once the form's own checks pass.
    counts = create(hub, token, shared_email_threshold="0", low_stock_threshold="-1")
    assert counts.status_code == 400
    assert "greater than or equal to 1" in field_error(counts, "shared_email_threshold")
    assert "greater than or equal to 0" in field_error(counts, "low_stock_threshold")
    assert hub.get("/api/v1/incentives", headers=admin.headers).json()["items"] == []


def test_editing_keeps_a_zero_threshold(hub: TestClient, make_person: MakePerson) -> None:
    admin = make_person("admin")
    token = sign_in(hub, admin)
    incentive = stored(hub, admin, create(hub, token, recaptcha_threshold="0"))
    reference = incentive["reference_id"]
    edit = hub.get(f"/incentives/{reference}/edit").text
    shown = re.search(r'name="recaptcha_threshold" type="text" value="([^"]*)"', edit)
    assert shown
    # Saved again as the edit page shows it, with the low-stock field cleared.
    saved = hub.post(
        f"/incentives/{reference}/edit",
        data=form(token, **{**MANUAL, "recaptcha_threshold": shown.group(1),
                            "low_stock_threshold": ""}),
    )  # fmt: skip
    assert saved.status_code == 200, saved.text
    after = hub.get(f"/api/v1/incentives/{reference}", headers=admin.headers).json()
    assert thresholds(after)["recaptcha"] == 0
    assert thresholds(after)["low_stock"] == 10
