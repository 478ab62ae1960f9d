"""The client tour: a seeded sandbox on a loopback port, driven by the Qualtrics client.

It shows what a developer does on day one: who am I, which surveys are there, what does one
look like, and the responses as a typed Parquet file.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from qualflow.qualtrics import Client
from qualflow.sandbox import SandboxState, create_app
from qualflow.sandbox.respondents import Simulator
from qualflow.sandbox.seed import seed_builtin

__all__ = ["TourResult", "run_tour", "seeded_sandbox"]

#: Demo data is the same on every run.
SEED = 20240917


@dataclass
class TourResult:
    sandbox_url: str
    survey_id: str
    parquet_path: Path
    rows: int


def seeded_sandbox(responses_per_survey: int) -> tuple[SandboxState, str]:
    """A sandbox with the built-in surveys and simulated responses; returns it and a token."""
    state = SandboxState()
    _user, token = state.create_user("demo.admin@example.com", first_name="Demo", last_name="Admin")
    for index, survey in enumerate(seed_builtin(state)):
        if responses_per_survey:
            Simulator(state, survey.id, seed=SEED + index).run(responses_per_survey)
    return state, token


def _step(console: Console, number: int, text: str) -> None:
    console.print()
    console.print(f"[bold cyan]{number}.[/] [bold]{text}[/]")


def run_tour(
    console: Console,
    data_dir: Path,
    *,
    responses_per_survey: int = 60,
    preview_rows: int = 5,
) -> TourResult:
    """Run the tour, printing what it does; returns where the Parquet file went."""
    from qualflow.demo.servers import start_server

    console.print("[bold]qualflow client tour[/] — the Qualtrics client against the sandbox")
    state, token = seeded_sandbox(responses_per_survey)
    random.seed(SEED)
    with start_server(create_app(state), name="sandbox") as sandbox:
        console.print(
            f"Sandbox (a Qualtrics-compatible API) listening on [link]{sandbox.url}[/], seeded "
            f"with {len(state.surveys)} surveys × {responses_per_survey} responses."
        )
        with Client(base_url=sandbox.url, api_token=token) as qualtrics:
            _step(console, 1, "Who am I?  client.whoami()")
            me = qualtrics.whoami()
            console.print(
                f"   {me.first_name} {me.last_name} <{me.email}> · user {me.user_id} · "
                f"brand {me.brand_id} · datacenter {me.datacenter}"
            )

            _step(console, 2, "List surveys  client.surveys.iter()")
            surveys = list(qualtrics.surveys.iter())
            table = Table(show_edge=False, header_style="bold")
            for column in ("Survey ID", "Name", "Active", "Last modified"):
                table.add_column(column)
            for summary in surveys:
                table.add_row(
                    summary.id,
                    summary.name,
                    "yes" if summary.is_active else "no",
                    _short(summary.last_modified) or "—",
                )
            console.print(table)

            chosen = next((s for s in surveys if "NPS" in s.name), surveys[0])
            _step(console, 3, f"Show one survey  client.surveys.get({chosen.id!r})")
            survey = qualtrics.surveys.get(chosen.id)
            console.print(f"   [bold]{survey.name}[/] · {len(survey.questions)} questions")
            for qid, question in list(survey.questions.items())[:6]:
                text = " ".join(question.question_text.split())
                console.print(f"   [dim]{qid}[/] {text[:90]}")
            counts = survey.response_counts
            console.print(
                f"   responses: {counts.auditable} recorded, {counts.generated} generated, "
                f"{counts.deleted} deleted"
            )

            _step(console, 4, "Export its responses to Parquet  client.export_responses(…)")
            data_dir.mkdir(parents=True, exist_ok=True)
            export = qualtrics.export_responses(
                chosen.id, format="csv", dest=data_dir / f"{chosen.id}.zip", poll_interval=0.2
            )
            parquet_path = data_dir / f"{chosen.id}.parquet"
            rows = export.write(parquet_path, format="parquet")
            console.print(
                f"   {rows} responses → [bold]{parquet_path}[/] "
                f"({parquet_path.stat().st_size:,} bytes, {len(export.columns)} columns)"
            )

            _step(console, 5, f"A few rows of {parquet_path.name} (typed columns)")
            _preview(console, parquet_path, preview_rows)
    console.print()
    console.print("[green]Tour complete.[/] The sandbox has stopped.")
    return TourResult(sandbox.url, chosen.id, parquet_path, rows)


def _short(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _preview(console: Console, path: Path, limit: int) -> None:
    data = pq.read_table(path)
    preferred = ("ResponseId", "RecordedDate", "Duration (in seconds)", "Q1", "Q2", "Q5")
    wanted = [name for name in preferred if name in data.column_names] or data.column_names[:6]
    subset = data.select(wanted).slice(0, limit)
    table = Table(show_edge=False, header_style="bold")
    for name in wanted:
        kind = str(subset.schema.field(name).type).split("[")[0]
        table.add_column(f"{name}\n[dim]{kind}[/]", overflow="ellipsis", max_width=28)
    for row in subset.to_pylist():
        table.add_row(*(_short(row[name]) for name in wanted))
    console.print(table)
