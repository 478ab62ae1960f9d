"""What every hub command shares: the one-line failure and the settings read from the
environment (each bad variable named)."""

from __future__ import annotations

from typing import NoReturn

import typer
from pydantic import ValidationError

from qualflow.settings import Settings


def fail(message: str) -> NoReturn:
    """End the command with ``error: message`` on stderr and exit code 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def load_settings() -> Settings:
    """The hub's settings; a bad ``QUALFLOW_*`` variable fails the command, named."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"QUALFLOW_{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        fail(f"invalid settings: {problems}")
