"""The review of a Tango incentive whose key Tango refuses (deactivated or changed)."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient

from tests.incentives.support import Person, Tango
from tests.incentives.test_api import API, create_tango_account
from tests.incentives.test_pages import sign_in


def test_a_refused_tango_key_is_a_warning_saying_what_to_do(
    hub: TestClient, admin: Person, tango: Tango
) -> None:
    account = create_tango_account(hub, admin, tango).json()["id"]
    incentive = hub.post(
        API,
        json={"name": "Tango", "provider": "tango", "tango_account_id": account,
              "utid": "U442382", "approval_mode": "automatic"},
        headers=admin.headers,
    )  # fmt: skip
    assert incentive.status_code == 201, incentive.text
    reference = incentive.json()["reference_id"]
    tango.state.fail_next(401, times=10)  # the key was deactivated in Tango

    review = hub.get(f"{API}/{reference}/review", headers=admin.headers)
    assert review.status_code == 200, review.text
    assert review.json()["provider"]["key_status"] == "refused"
    [expected] = [w for w in review.json()["warnings"] if "refused" in w]
    assert expected.startswith(
        "Tango refused the platform credentials of Tango account 'Sandbox' (Tango answered HTTP 401"
    )
    assert expected.endswith(": correct its platform name and key; until then every reward is held")

    sign_in(hub, admin)
    page = hub.get(f"/incentives/{reference}/review")
    assert page.status_code == 200, page.text
    # Each call to Tango has its own request id; the rest of the warning is the same.
    assert _without_request_id(expected) in _without_request_id(html.unescape(page.text))


def _without_request_id(text: str) -> str:
    return re.sub(r" \(request id \w+\)", "", text)
