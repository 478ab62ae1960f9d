"""A listing with nothing in it says what to do next instead of printing an empty frame."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qualflow.cli import run


@pytest.fixture
def fresh_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUALFLOW_DATA_DIR", str(tmp_path / "data"))
    for name in ("QUALFLOW_DATABASE_URL", "QUALFLOW_SECRET_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "300")  # one line each, however long


@pytest.mark.usefixtures("fresh_hub")
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["runs", "ls"], "No runs yet: an enabled automation starts one"),
        (["runs", "ls", "--status", "failed"], "No runs match these filters."),
        (["automations", "ls"], "No automations yet: create one in the web UI"),
        (["connections", "ls"], "No connections yet: add one with qualflow connections add"),
        (["users", "ls"], "No users yet: create the first admin with qualflow users create"),
        (["incentives", "ls"], "No incentives yet: create one with qualflow incentives create"),
        (["incentives", "ls", "--paused"], "No incentives match."),
    ],
)
def test_an_empty_listing_says_what_to_do(
    capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    assert run(args, prog_name="qualflow") == 0
    out = capsys.readouterr().out
    assert out.startswith(says)
    assert out.count("\n") == 1
    assert run([*args, "--json"], prog_name="qualflow") == 0
    listed = json.loads(capsys.readouterr().out)
    assert (listed["items"] if isinstance(listed, dict) else listed) == []
