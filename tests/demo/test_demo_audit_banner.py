"""The demo's banner reads well in an ordinary 80-column terminal: a detail too long for one
line continues under its own text, not under the labels."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from rich.console import Console

from qualflow.cli.demo_cmd import _banner

LABELS = (
    "Sandbox Qualtrics",
    "Connection",
    "Automation",
    "Incentive",
    "Tango",
    "Mail",
    "Respondents",
)


def _hub(data_dir: Path) -> Any:
    return SimpleNamespace(
        url="http://127.0.0.1:8000",
        admin_email="admin@qualflow.demo",
        admin_password="abcd-efgh-jkmn-pqrs",
        sandbox_server=SimpleNamespace(url="http://127.0.0.1:33021"),
        survey_id="SV_0123456789abcde",
        incentive_reference="INC-7F3K2Q",
        tango_account_id=1,
        smtp=SimpleNamespace(port=2525),
        data_dir=data_dir,
        respondent_interval=3.0,
    )


def test_the_banner_keeps_each_detail_in_its_column_at_80_columns(tmp_path: Path) -> None:
    console = Console(width=80, record=True, highlight=False, color_system=None)
    _banner(console, cast(Any, _hub(tmp_path / "a-rather-long-data-directory")))
    shown = console.export_text()
    lines = [line.strip("│ ").rstrip() for line in shown.splitlines()]
    inner = [line for line in lines if line and not line.startswith(("╭", "╰", "Runs appear"))]

    assert inner[0] == "Open http://127.0.0.1:8000"
    assert re.fullmatch(r"Sign in admin@qualflow\.demo\s+/\s+abcd-efgh-jkmn-pqrs", inner[1])
    details = [line for line in shown.splitlines() if "│" in line][3:]
    indent = None
    for line in details:
        text = line.strip("│").rstrip("│").rstrip()
        # A label starts right after the panel's one space of padding; a continuation does not.
        label = next((name for name in LABELS if text.startswith(" " + name)), None)
        if label is not None:
            value_at = len(text) - len(text.lstrip()[len(label) :].lstrip())
            indent = value_at if indent is None else indent
            assert value_at == indent, line  # every value starts in the same column
        else:
            assert indent is not None, line
            # A continuation starts in the value column, not under the labels.
            assert len(text) - len(text.lstrip()) == indent, shown
    assert "suspicious ones wait in the Review queue" in " ".join(
        " ".join(details).replace("│", " ").split()
    )
