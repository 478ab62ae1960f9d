"""`qualflow qualtrics …` refuses bad input with a one-line reason and a non-zero exit."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from qualflow.cli import app

NO_CREDENTIALS = {
    "QUALTRICS_API_TOKEN": "",
    "QUALTRICS_CLIENT_ID": "",
    "QUALTRICS_CLIENT_SECRET": "",
    "QUALTRICS_DATACENTER": "",
    "QUALTRICS_BASE_URL": "",
}


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["q", "whoami", "-d", "iad1"], "no credentials"),
        (["q", "whoami", "--token", "t", "-d", "mars1"], "unknown Qualtrics datacenter 'mars1'"),
        (["qualtrics", "surveys", "--token", "t"], "datacenter"),
        (["q", "survey", "R_123", "--token", "t", "-d", "iad1"], "not a survey id"),
        (["q", "whoami", "--token", "t", "--base-url", "not a url"], "base_url"),
        (["q", "whoami", "--client-id", "cid", "-d", "iad1"], "client_secret"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(args: list[str], reason: str) -> None:
    result = CliRunner().invoke(app, args, env=NO_CREDENTIALS)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("error:")
    assert reason in lines[0]
    assert "Traceback" not in result.output
