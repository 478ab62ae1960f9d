"""The demo's lifecycle as a new user meets it: a second start on the same data dir."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from qualflow.accounts.users import authenticate_password
from qualflow.cli import app
from qualflow.demo.hub import DemoHub


def test_a_second_demo_on_a_running_demos_data_dir_is_refused_and_leaves_it_alone(
    tmp_path: Path,
) -> None:
    """Two demos on one data dir would share its database and sandbox file: the second would
    change the first's sign-in and point its connection at the second's sandbox."""
    with DemoHub(data_dir=tmp_path, port=0, respondent_interval=0, examples=False) as first:
        result = CliRunner().invoke(
            app, ["demo", "--data-dir", str(tmp_path), "--port", "0", "--duration", "0"]
        )

        assert result.exit_code == 1, result.output
        message = " ".join(result.output.split())
        assert "already running" in message
        assert first.url in message  # where to find the demo that runs
        assert first.store is not None
        with first.store.sessionmaker() as db:
            assert authenticate_password(db, first.admin_email, first.admin_password)

    # Once it stopped, the same data dir starts again (and is reused).
    with DemoHub(data_dir=tmp_path, port=0, respondent_interval=0, examples=False) as again:
        assert again.admin_password
