"""``qualflow automations show``/``ls`` show step secrets masked, as the API does: neither the
secret nor its sealed (encrypted) form ever reaches the terminal."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from qualflow.cli import app
from qualflow.engine.automations import Automations
from qualflow.engine.config import EngineConfig
from qualflow.engine.services import EngineServices
from qualflow.notify.webhooks import generate_secret
from qualflow.settings import Settings
from qualflow.store.runtime import Store
from qualflow.store.sealed import SEALED_PREFIX
from qualflow.web.api.step_secrets import seal_definition

runner = CliRunner()


def test_automations_show_and_ls_mask_a_signing_secret(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = generate_secret()
    definition = {
        "name": "Signed [hook]",
        "trigger": {"type": "schedule", "cron": "0 3 * * *"},
        "steps": [
            {
                "action": "http.request",
                "key": "hook",
                "config": {
                    "url": "https://receiver.example.org/hook",
                    "json": {"ids": ["[b]1[/b]"]},
                    "signing_secret": secret,
                },
            }
        ],
    }
    services = EngineServices(
        config=EngineConfig(database_url=settings.database_url), sessionmaker=store.sessionmaker
    )
    created = Automations(services).create(seal_definition(definition, store.secret_box))
    monkeypatch.setenv("QUALFLOW_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("QUALFLOW_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv(
        "QUALFLOW_SECRET_KEYS", ",".join(k.get_secret_value() for k in settings.secret_keys)
    )

    shown = runner.invoke(app, ["automations", "show", str(created.id)])
    shown_json = runner.invoke(app, ["automations", "show", str(created.id), "--json"])
    listed_json = runner.invoke(app, ["automations", "ls", "--json"])

    masked = "••••" + secret[-4:]
    for result in (shown, shown_json, listed_json):
        assert result.exit_code == 0, result.output
        assert secret not in result.output
        assert SEALED_PREFIX not in result.output
    assert f'"signing_secret": "{masked}"' in shown.output
    # Names and configs are printed as they are, not read as rich markup.
    assert "Signed [hook]" in shown.output
    assert '"[b]1[/b]"' in shown.output
    assert json.loads(shown_json.output)["steps"][0]["config"]["signing_secret"] == masked
    assert json.loads(listed_json.output)[0]["steps"][0]["config"]["signing_secret"] == masked
