"""Importing gift codes: any text is either read or refused with a 422 that says why."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from qualflow.incentives.providers.gift_codes import parse_codes_csv
from tests.incentives.support import Person

HEADER = "code,value,currency,expiry"


def test_lone_carriage_returns_end_lines_as_spreadsheets_write_them() -> None:
    rows, errors = parse_codes_csv(f"{HEADER}\rA-1,10.00,USD,\rB-2,5,EUR,2099-01-01\r")
    assert [(r.code, r.value_minor, r.currency) for r in rows] == [
        ("A-1", 1000, "USD"),
        ("B-2", 500, "EUR"),
    ]
    assert errors == []


def test_cells_past_the_header_do_not_break_the_blank_line_check() -> None:
    rows, errors = parse_codes_csv(f"{HEADER}\n,,,,stray\n,,,\n")
    assert rows == []
    assert errors == ["line 2: the code is empty"]


def test_text_that_is_not_csv_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="the CSV cannot be read after line 1: field larger"):
        parse_codes_csv(f"{HEADER}\n{'x' * 200_000},10.00,USD,\n")


def test_bad_cells_and_an_empty_file_say_what_to_write() -> None:
    rows, errors = parse_codes_csv(
        f"{HEADER}\nA-1,10.00,USD,31/12/2099\nB-2,10.00,XXX,\nC-3,10.00,usd,2099-12-31\n"
    )
    assert [row.code for row in rows] == ["C-3"]
    assert errors == [
        "line 2: the expiry '31/12/2099' is not a date as YYYY-MM-DD",
        "line 3: XXX is ISO 4217's code for no currency (or a test or metal)",
    ]
    with pytest.raises(ValueError, match="the CSV is empty"):
        parse_codes_csv("")


def test_the_api_answers_422_for_unreadable_csv(hub: TestClient, admin: Person) -> None:
    pools = "/api/v1/incentives/providers/gift-code-pools"
    pool = hub.post(pools, json={"name": "Imports"}, headers=admin.headers).json()
    url = f"{pools}/{pool['id']}/codes"
    csv_headers = {**admin.headers, "Content-Type": "text/csv"}

    read = hub.post(url, content=f"{HEADER}\rC-3,10.00,USD,\r", headers=csv_headers)
    refused = hub.post(url, content=f"{HEADER}\n{'x' * 200_000}\n", headers=csv_headers)

    assert read.json() == {"imported": 1, "duplicates": 0, "errors": []}
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "invalid_csv"
    assert "field larger than field limit" in refused.json()["error"]["message"]


def test_a_value_too_large_to_store_is_a_line_error_naming_it_exactly() -> None:
    rows, errors = parse_codes_csv(
        f"{HEADER}\nA-1,1e30,USD,\nB-2,123456789012345678901234567890.12,USD,\nC-3,25,USD,\n"
    )
    assert [row.code for row in rows] == ["C-3"]
    assert errors == [
        "line 2: 1000000000000000000000000000000.00 USD is too large (at most 21474836.47 USD)",
        "line 3: 123456789012345678901234567890.12 USD is too large (at most 21474836.47 USD)",
    ]
