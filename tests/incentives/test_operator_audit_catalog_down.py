"""REST: an incentive that cannot be checked because Tango does not answer (or refuses the
account's key) is a 502 with Tango's words, not a 422 blaming the request."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.incentives.support import Person, Tango
from tests.incentives.test_api import API, create_tango_account


def test_tango_down_while_saving_is_a_502(hub: TestClient, admin: Person, tango: Tango) -> None:
    account = create_tango_account(hub, admin, tango).json()["id"]
    body = {"name": "Tango", "provider": "tango", "tango_account_id": account,
            "utid": "U561593", "amount": "10", "approval_mode": "automatic"}  # fmt: skip
    tango.state.fail_next(503, times=3, path_prefix="/raas/v2/catalogs")  # every attempt
    answer = hub.post(API, json=body, headers=admin.headers)
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert error["code"] == "tango_error"
    assert error["message"].startswith(
        "could not read the Tango catalog: Tango answered HTTP 503: Injected failure."
    )
    assert "details" not in error or not error["details"]

    created = hub.post(API, json=body, headers=admin.headers)  # Tango answers again
    assert created.status_code == 201, created.text
    # An item the cached catalog does not list makes it read again.
    tango.state.fail_next(503, times=3, path_prefix="/raas/v2/catalogs")
    changed = hub.patch(
        f"{API}/{created.json()['reference_id']}", json={"utid": "U999001"}, headers=admin.headers
    )
    assert changed.status_code == 502, changed.text
