"""Gift-code imports: every line that is not imported is named with why, none is lost silently
and no file makes the import fail with a server error."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.incentives.support import Person

HEADER = "code,value,currency,expiry"
POOLS = "/api/v1/incentives/providers/gift-code-pools"


def test_a_code_with_a_nul_or_control_character_is_a_line_error_not_a_500(
    hub: TestClient, admin: Person
) -> None:
    pool = hub.post(POOLS, json={"name": "Controls"}, headers=admin.headers).json()
    answer = hub.post(
        f"{POOLS}/{pool['id']}/codes",
        content=f"{HEADER}\nNUL\x00-1,10.00,USD,\nBELL\x07-2,10.00,USD,\nOK-3,10.00,USD,\n".encode(),
        headers={**admin.headers, "Content-Type": "text/csv"},
    )

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "imported": 1,
        "duplicates": 0,
        "errors": [
            "line 2: the code contains a control character (U+0000); codes are printable text",
            "line 3: the code contains a control character (U+0007); codes are printable text",
        ],
    }
