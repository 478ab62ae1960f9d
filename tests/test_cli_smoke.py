from typer.testing import CliRunner

from qualflow import __version__
from qualflow.cli import app


def test_version_command_prints_package_version() -> None:
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == __version__


def test_unknown_command_exits_nonzero() -> None:
    result = CliRunner().invoke(app, ["no-such-command"])
    assert result.exit_code != 0
