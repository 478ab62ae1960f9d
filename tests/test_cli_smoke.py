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


def test_help_paragraphs_are_single_lines() -> None:
    """Typer keeps the line breaks of a help text's later paragraphs, so a paragraph wrapped in
    the source comes out broken mid-sentence in a terminal of another width."""
    import inspect

    import typer.main

    broken = []

    def walk(command: object, path: str) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")
        text = inspect.cleandoc(getattr(command, "help", None) or "")
        if any("\n" in paragraph.strip() for paragraph in text.split("\n\n")[1:]):
            broken.append(path)

    walk(typer.main.get_command(app), "qualflow")
    assert broken == []
