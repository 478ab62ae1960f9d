"""The `qualflow` command line: one typer app with a sub-app per area."""

from __future__ import annotations

import typer

from qualflow import __version__
from qualflow.cli.demo_cmd import demo as demo_command
from qualflow.cli.engine_cmd import app as engine_app
from qualflow.cli.hub_cmd import app as hub_app
from qualflow.cli.incentives_cmd import app as incentives_app
from qualflow.cli.qualtrics_cmd import app as qualtrics_app
from qualflow.cli.sandbox_cmd import app as sandbox_app

app = typer.Typer(
    name="qualflow",
    help="Self-hosted hub that connects a Qualtrics account to the rest of your stack.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(qualtrics_app, name="qualtrics", help="Talk to the Qualtrics API (alias: q).")
app.add_typer(qualtrics_app, name="q", hidden=True)
app.add_typer(sandbox_app, name="sandbox", help="Run the Qualtrics-compatible sandbox.")
app.command("demo")(demo_command)
app.add_typer(hub_app)  # migrate, users, secrets, connections
app.add_typer(engine_app)  # serve, worker, runs, automations
app.add_typer(incentives_app, name="incentives", help="Incentives: reward respondents.")


@app.command()
def version() -> None:
    """Print the qualflow version."""
    typer.echo(__version__)


def main() -> None:
    app()
