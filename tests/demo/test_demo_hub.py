"""`qualflow demo --duration`: the whole product in one process produces runs and emails."""

from __future__ import annotations

import re
from email import message_from_bytes
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qualflow.cli import app


@pytest.mark.slow
def test_bounded_demo_turns_respondents_into_runs_and_emails(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["demo", "--data-dir", str(tmp_path), "--port", "0", "--every", "0.3", "--duration", "8"],
    )

    assert result.exit_code == 0, result.output
    assert re.search(r"Sign in admin@qualflow\.demo\s+/\s+[a-z0-9-]{19}", result.output)
    summary = re.search(
        r"Stopped\. (\d+) responses? → (\d+) runs? \((.*)\), (\d+) emails? received", result.output
    )
    assert summary, result.output
    responses, runs, emails = int(summary[1]), int(summary[2]), int(summary[4])
    assert responses > 0
    assert 0 < runs <= responses  # abandoned responses start no run
    assert "succeeded" in summary[3]
    assert "failed" not in summary[3]
    assert emails > 0
    # Every email the SMTP sink received is on disk, and carries the response's data.
    mail = sorted((tmp_path / "demo-mail").glob("*.eml"))
    assert len(mail) == emails
    message = message_from_bytes(mail[0].read_bytes())
    assert message["To"] == "cx-team@example.org"
    assert str(message["Subject"]).startswith("Follow up: NPS ")
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert re.search(r"Response: R_\w+", body.decode())


def test_demo_refuses_a_port_that_is_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app, ["demo", "--data-dir", str(tmp_path), "--port", str(port), "--duration", "1"]
        )

    assert result.exit_code == 1
    assert f"is port {port} taken?" in result.output
