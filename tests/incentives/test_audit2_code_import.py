"""Gift-code imports: every line that is not imported is named with why, none is lost silently
and no file makes the import fail with a server error."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.providers.gift_codes import parse_codes_csv
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


def test_a_code_repeated_with_another_value_is_named_not_skipped_as_a_duplicate(
    manager: IncentiveManager,
) -> None:
    pool = manager.create_pool("conflicts")
    first = manager.import_codes(pool.id, f"{HEADER}\nA-1,10.00,USD,\nB-2,10.00,USD,2099-01-01\n")
    assert (first.imported, first.duplicates, first.errors) == (2, 0, [])

    report = manager.import_codes(
        pool.id,
        f"{HEADER}\n"
        "A-1,10.00,USD,\n"  # the same code again: a harmless re-import
        "A-1,5.00,EUR,\n"  # the pool's A-1 is worth 10.00 USD
        "B-2,10.00,USD,2099-06-30\n"  # the pool's B-2 expires on 2099-01-01
        "C-3,10.00,USD,\n"
        "C-3,10.00,USD,\n"  # repeated as it is: skipped
        "C-3,20.00,USD,\n",  # repeated with another value than line 6's
    )

    assert (report.imported, report.duplicates) == (1, 2)
    assert report.errors == [
        "line 3: the code is already in the pool as 10.00 USD, never expiring; "
        "this line says 5.00 EUR, never expiring",
        "line 4: the code is already in the pool as 10.00 USD, expiring 2099-01-01; "
        "this line says 10.00 USD, expiring 2099-06-30",
        "line 7: the code is on line 5 as 10.00 USD, never expiring; "
        "this line says 20.00 USD, never expiring",
    ]


def test_a_header_naming_a_column_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="the header names the column code twice"):
        parse_codes_csv("code,code,value,currency\nX-1,Y-1,10.00,USD\n")


@pytest.mark.parametrize(("separator", "called"), [(";", "semicolons"), ("\t", "tabs")])
def test_a_file_separated_by_semicolons_or_tabs_is_told_to_use_commas(
    separator: str, called: str
) -> None:
    text = separator.join(HEADER.split(",")) + "\n" + separator.join(["A-1", "10", "EUR", ""])
    expected = (
        f"the CSV's columns are separated by {called}, not commas: save it as "
        "comma-separated (code,value,currency[,expiry])"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        parse_codes_csv(text + "\n")


@pytest.mark.parametrize(
    "column", ["expiration", "Expiry Date", "expires_on", "valid_until", "end date"]
)
def test_an_expiry_column_under_another_name_is_refused_not_ignored(column: str) -> None:
    # Ignored, it would import codes that expire as never expiring: given out after they lapse.
    text = f"code,value,currency,{column}\nA-1,10.00,USD,2099-01-01\n"
    expected = (
        f"the column {column.strip().lower()!r} is not read: name the column of expiry dates "
        "'expiry' (YYYY-MM-DD), or remove it"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        parse_codes_csv(text)


def test_other_extra_columns_are_still_ignored() -> None:
    rows, errors = parse_codes_csv("code,value,currency,note,updated_by\nA-1,10.00,USD,b7,jo\n")
    assert ([row.code for row in rows], errors) == (["A-1"], [])
