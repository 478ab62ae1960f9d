"""Every command's --help describes each of its arguments and options, and its one-line summary
in the group's command list is one line (no line break mid-sentence)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer

from qualflow.cli import app


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    # typer may carry its own copy of click: a group is what has sub-commands.
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield " ".join(path), command
        return
    for name, sub in subcommands.items():
        yield from _commands(sub, (*path, name))


def test_the_walk_reaches_every_group() -> None:
    paths = {path for path, _ in _commands(typer.main.get_command(app))}
    assert {"runs show", "incentives tango add", "sandbox faults ls", "q export"} <= paths


def test_every_argument_and_option_has_help() -> None:
    undescribed = [
        f"{path} {param.name}"
        for path, command in _commands(typer.main.get_command(app))
        for param in command.params
        if param.name != "help" and not getattr(param, "help", None)
    ]
    assert undescribed == []


def test_every_command_summary_is_one_line() -> None:
    broken = [
        path
        for path, command in _commands(typer.main.get_command(app))
        if "\n" in (command.help or "").split("\n\n")[0].strip()
    ]
    assert broken == []
