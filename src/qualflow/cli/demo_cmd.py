"""`qualflow demo`: the whole product on the embedded default, with nothing to set up."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from qualflow.cli.common import fail, one_line

if TYPE_CHECKING:
    from qualflow.demo.hub import DemoHub

__all__ = ["demo"]


def demo(
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir",
            envvar="QUALFLOW_DATA_DIR",
            help="Where the demo keeps its database, sandbox state, mail and exports.",
        ),
    ] = Path(".qualflow"),
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port of the web app (0: any free port).")
    ] = 8000,
    sandbox_port: Annotated[
        int,
        typer.Option(min=0, max=65535, help="Port of the sandbox Qualtrics (0: any free port)."),
    ] = 0,
    every: Annotated[
        float,
        typer.Option(
            "--every",
            min=0.0,
            help="Seconds between simulated respondents (0: none; use the sandbox to add some).",
        ),
    ] = 3.0,
    duration: Annotated[
        float | None,
        typer.Option(min=0.0, help="Stop after this many seconds (default: run until Ctrl-C)."),
    ] = None,
    tour: Annotated[
        bool,
        typer.Option(
            "--tour",
            help="Instead: a scripted tour of the Qualtrics client against a seeded sandbox.",
        ),
    ] = False,
    responses: Annotated[
        int | None,
        typer.Option(
            min=0, max=5000, help="--tour only: simulated responses per survey (default 60)."
        ),
    ] = None,
) -> None:
    """Run qualflow with a sandbox Qualtrics, an SMTP sink and simulated respondents."""
    console = Console(highlight=False)
    if responses is not None and not tour:
        fail("--responses applies to --tour only (see 'qualflow demo --help')", 2)
    if tour:
        from qualflow.demo.tour import run_tour

        try:
            per_survey = 60 if responses is None else responses
            run_tour(console, data_dir / "demo", responses_per_survey=per_survey)
        except OSError as exc:
            fail(one_line(exc))
        return
    _run_hub(console, data_dir, port, sandbox_port, every, duration)


def _run_hub(
    console: Console,
    data_dir: Path,
    port: int,
    sandbox_port: int,
    every: float,
    duration: float | None,
) -> None:
    from qualflow.demo.hub import DemoHub, PortTaken
    from qualflow.demo.lock import DemoAlreadyRunning

    hub = DemoHub(
        data_dir=data_dir, port=port, sandbox_port=sandbox_port, respondent_interval=every
    )
    console.print("Starting qualflow (embedded default: SQLite, in-process worker)…")
    try:
        hub.start()
    except DemoAlreadyRunning as exc:
        fail(str(exc))
    except PortTaken as exc:
        option = "--port" if exc.server == "hub" else "--sandbox-port"
        fail(f"{exc.strerror} ({option} {exc.port} is taken; 0 picks a free one)")
    except OSError as exc:
        fail(one_line(exc))
    # `docker stop`, systemd and kill send SIGTERM: stop as Ctrl-C does (runs drained, the
    # sandbox saved, the summary printed). A second signal while stopping ends it at once.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        _banner(console, hub)
        _watch(console, hub, duration)
    except KeyboardInterrupt:
        console.print("\nStopping…")
    finally:
        signal.signal(signal.SIGTERM, previous)
        hub.stop()
    final = hub.final_status
    if final is None:
        return
    runs = _statuses(final.runs)
    console.print(
        f"Stopped. {_count(final.responses, 'response')} → {_count(final.runs_total, 'run')} "
        f"({runs}), "
        f"{_count(final.emails_received, 'email')} received, "
        f"{_count(sum(final.rewards.values()), 'reward')} ({_statuses(final.rewards)}). "
        f"Data kept in {data_dir}/.",
        soft_wrap=True,
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _statuses(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "none"


def _live(counts: dict[str, int]) -> str:
    """Counts by status for the one-line live view: ``skipped 2 succeeded 9``."""
    return " ".join(f"{status} {count}" for status, count in sorted(counts.items())) or "0"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _banner(console: Console, hub: DemoHub) -> None:
    sandbox_url = hub.sandbox_server.url if hub.sandbox_server else "?"
    # A grid, so that a detail too long for the terminal continues under its own text.
    details = Table.grid(padding=(0, 2))
    details.add_column(no_wrap=True)
    details.add_column()
    details.add_row("Sandbox Qualtrics", f"{sandbox_url}  (survey {hub.survey_id})")
    details.add_row("Connection", "“Demo sandbox”, validated with whoami")
    details.add_row(
        "Automation", "“NPS follow-up: unhappy customers”: response → fetch → condition → email"
    )
    if hub.incentive_reference:
        details.add_row(
            "Incentive",
            f"{hub.incentive_reference} pays screener respondents a $10 gift code "
            "(Incentives; suspicious ones wait in the Review queue)",
        )
    if hub.tango_account_id:
        details.add_row(
            "Tango",
            f"“Sandbox Tango” (#{hub.tango_account_id}), the sandbox's Tango double: "
            "Incentives → Providers → Catalog",
        )
    details.add_row(
        "Mail",
        f"SMTP sink on port {hub.smtp.port if hub.smtp else '?'}; "
        f"messages in Outbox and {hub.data_dir}/demo-mail/",
    )
    details.add_row(
        "Respondents",
        f"one every {hub.respondent_interval:g} s (satisfaction survey and screener in turn)"
        if hub.respondent_interval > 0
        else "none (add some with the sandbox)",
    )
    sign_in = Text.from_markup(
        f"[bold]Open[/] [link={hub.url}]{hub.url}[/]\n"
        f"[bold]Sign in[/] {hub.admin_email}  /  [bold]{hub.admin_password}[/]\n"
    )
    console.print(Panel.fit(Group(sign_in, details), title="qualflow demo", border_style="cyan"))
    console.print("Runs appear under Runs as respondents complete the survey. Ctrl-C stops.")
    console.file.flush()  # piped output (tee, CI logs) shows the sign-in at once


def _watch(console: Console, hub: DemoHub, duration: float | None) -> None:
    started = time.monotonic()
    last = None
    while duration is None or time.monotonic() - started < duration:
        time.sleep(0.5 if duration is not None else 1.0)
        status = hub.status()
        line = (
            f"responses {status.responses} · runs "
            + _live(status.runs)
            + f" · emails {status.emails_received}"
            + f" · rewards {_live(status.rewards)}"
        )
        if line != last:
            console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {line}", soft_wrap=True)
            console.file.flush()
            last = line
