"""Every `qualflow qualtrics …` command takes the same connection options (one definition),
with the same flags, environment variables and help, in the "Connection" panel of its help."""

from __future__ import annotations

from typing import Any

from typer.main import get_command

from qualflow.cli.qualtrics_cmd import app

EXPECTED = {
    "datacenter": (("--datacenter", "-d"), "QUALTRICS_DATACENTER"),
    "base_url": (("--base-url",), "QUALTRICS_BASE_URL"),
    "token": (("--token",), "QUALTRICS_API_TOKEN"),
    "client_id": (("--client-id",), "QUALTRICS_CLIENT_ID"),
    "client_secret": (("--client-secret",), "QUALTRICS_CLIENT_SECRET"),
    "scope": (("--scope",), "QUALTRICS_SCOPE"),
}


def _connection_options(command: Any) -> dict[str, Any]:
    return {
        str(param.name): (tuple(param.opts), param.envvar, getattr(param, "help", None))
        for param in command.params
        if getattr(param, "rich_help_panel", None) == "Connection"
    }


def test_every_command_has_the_same_connection_options() -> None:
    # typer may carry its own copy of click: no isinstance check against ours.
    commands: dict[str, Any] = get_command(app).commands  # type: ignore[attr-defined]
    assert set(commands) >= {"whoami", "surveys", "survey", "export"}
    shared = [_connection_options(command) for command in commands.values()]
    first = shared[0]
    assert {name: (opts, env) for name, (opts, env, _) in first.items()} == EXPECTED
    assert all(options == first for options in shared)
    for command in commands.values():
        names = [param.name for param in command.params]
        # After the command's own options and before its --json, as in its help.
        assert names[names.index("datacenter") : names.index("scope") + 1] == list(EXPECTED)
        assert names.index("scope") < names.index("as_json")
