"""Settings that would only fail later (every email, every webhook URL) are refused at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.settings import Settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def _data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QUALFLOW_DATA_DIR", str(tmp_path / "data"))
    for name in ("QUALFLOW_DATABASE_URL", "QUALFLOW_SECRET_KEYS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("QUALFLOW_SMTP_FROM", "research team"),
        ("QUALFLOW_SMTP_FROM", "research@"),
        ("QUALFLOW_SMTP_FROM", "a@example.org, b@example.org"),
        ("QUALFLOW_PUBLIC_BASE_URL", "https://"),
        ("QUALFLOW_PUBLIC_BASE_URL", "http:///hooks"),
    ],
)
def test_an_unusable_value_fails_the_command_in_one_named_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    result = runner.invoke(app, ["users", "ls"])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"error: invalid settings: {variable}:")


@pytest.mark.parametrize(
    "sender", ["qualflow@localhost", "research@example.org", "Research <research@example.org>"]
)
def test_usual_senders_are_accepted(sender: str) -> None:
    assert Settings(smtp_from=sender).smtp_from == sender


def test_a_public_url_with_a_host_and_path_is_accepted() -> None:
    settings = Settings(public_base_url="https://hub.example.org:8443/qualflow/")
    assert settings.public_base_url == "https://hub.example.org:8443/qualflow"
    with pytest.raises(ValidationError):
        Settings(public_base_url="https://")


def test_an_smtp_password_without_a_username_fails_instead_of_being_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without a username no login is attempted: the password would be silently unused and the
    # server would refuse every email for want of authentication.
    monkeypatch.setenv("QUALFLOW_SMTP_HOST", "smtp.example.org")
    monkeypatch.setenv("QUALFLOW_SMTP_PASSWORD", "hunter2-very-secret")
    result = runner.invoke(app, ["users", "ls"])
    assert result.exit_code == 1, result.output
    assert "QUALFLOW_SMTP_PASSWORD" in result.output
    assert "QUALFLOW_SMTP_USERNAME" in result.output
    assert "hunter2-very-secret" not in result.output
    monkeypatch.setenv("QUALFLOW_SMTP_USERNAME", "mailer")
    assert runner.invoke(app, ["users", "ls"]).exit_code == 0
