"""``qualflow secrets rotate`` re-encrypts the credential headers of ``http.request`` steps
(sealed step secrets inside the automation definition): with the old key retired, the step still
sends them."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualflow.engine.automations import Automations
from qualflow.engine.config import EngineConfig
from qualflow.engine.services import EngineServices
from qualflow.settings import Settings
from qualflow.store.runtime import open_store
from qualflow.store.sealed import SEALED_PREFIX, unseal
from qualflow.store.secrets import SecretBox, SecretDecryptionError, read_keys_file
from qualflow.web.api.step_secrets import seal_definition
from tests.hub.test_cli import _run, env  # noqa: F401
from tests.hub.test_engine_round2_header_secrets import (
    PLAIN_HEADERS,
    SECRET_HEADERS,
    _definition,
)
from tests.hub.test_step_secrets import _sign_with, _stored_configs


def test_rotation_reencrypts_header_secrets_and_the_step_still_sends_them(
    env: Path,  # noqa: F811
    database_url: str,
) -> None:
    assert _run("migrate").exit_code == 0
    settings = Settings(data_dir=env, database_url=database_url)
    store = open_store(settings, run_migrations=False)
    try:
        services = EngineServices(
            config=EngineConfig(database_url=database_url), sessionmaker=store.sessionmaker
        )
        definition = _definition({**SECRET_HEADERS, **PLAIN_HEADERS})
        created = Automations(services).create(seal_definition(definition, store.secret_box))
        (before,) = _stored_configs(store, created.id)
    finally:
        store.close()
    old_keys = read_keys_file(env / "secret.keys")
    for name in SECRET_HEADERS:
        assert before["headers"][name].startswith(SEALED_PREFIX)

    rotated = _run("secrets", "rotate", "--retire-old")
    assert rotated.exit_code == 0, rotated.output
    assert f"automation step secrets: {len(SECRET_HEADERS)} re-encrypted" in rotated.stdout
    (new_key,) = read_keys_file(env / "secret.keys")
    assert new_key not in old_keys

    store = open_store(settings, run_migrations=False)
    try:
        (after,) = _stored_configs(store, created.id)
        only_new, only_old = SecretBox([new_key]), SecretBox(old_keys)
        for name, value in SECRET_HEADERS.items():
            assert after["headers"][name] != before["headers"][name]
            assert unseal(only_new, after["headers"][name]) == value
            with pytest.raises(SecretDecryptionError):
                unseal(only_old, after["headers"][name])
        assert {k: after["headers"][k] for k in PLAIN_HEADERS} == PLAIN_HEADERS
        # The step, run with only the new key, sends every credential in clear.
        request = _sign_with(store, after)
        for name, value in SECRET_HEADERS.items():
            assert request.headers[name] == value
    finally:
        store.close()
