"""Helpers for the client's offline tests: the recorded real Qualtrics answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

RECORDED = Path(__file__).resolve().parent.parent / "fixtures" / "qualtrics-recorded"


def load_recorded(name: str) -> dict[str, Any]:
    """``{"request": …, "status": …, "body": …}`` of a call recorded from the real API."""
    with (RECORDED / name).open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


@pytest.fixture
def recorded() -> Any:
    """The loader, for tests that pick a recording by name."""
    return load_recorded


@pytest.fixture
def recorded_survey() -> dict[str, Any]:
    return load_recorded("get_survey.json")


@pytest.fixture
def recorded_survey_with_column_map() -> dict[str, Any]:
    return load_recorded("get_survey_with_export_column_map.json")


@pytest.fixture
def recorded_definition() -> dict[str, Any]:
    return load_recorded("get_survey_definition.json")
