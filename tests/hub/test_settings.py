"""Settings: defaults, environment parsing, the generated keys file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from qualflow.settings import Settings
from qualflow.store.secrets import SecretBox, SecretKeyError, load_or_create_keys, secret_box_for


def test_defaults_put_everything_in_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("QUALFLOW_DATA_DIR", "QUALFLOW_DATABASE_URL", "QUALFLOW_SECRET_KEYS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.data_dir == Path(".qualflow")
    assert settings.database_url == f"sqlite:///{tmp_path / '.qualflow' / 'qualflow.db'}"
    assert settings.is_sqlite
    assert settings.should_auto_migrate
    assert settings.secret_keys == []


def test_environment_switches_to_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUALFLOW_DATABASE_URL", "postgresql://db.internal/qualflow")
    monkeypatch.setenv("QUALFLOW_SECRET_KEYS", " key-one , key-two,")
    monkeypatch.setenv("QUALFLOW_LOG_LEVEL", "debug")
    monkeypatch.setenv("QUALFLOW_PUBLIC_BASE_URL", "https://hub.example.org/")
    settings = Settings()
    assert settings.database_url == "postgresql://db.internal/qualflow"
    assert not settings.is_sqlite
    assert not settings.should_auto_migrate
    assert [key.get_secret_value() for key in settings.secret_keys] == ["key-one", "key-two"]
    assert "key-one" not in repr(settings)
    assert settings.log_level == "DEBUG"
    assert settings.public_base_url == "https://hub.example.org"
    assert settings.cookie_secure


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QUALFLOW_PUBLIC_BASE_URL", "hub.example.org"),
        ("QUALFLOW_PORT", "70000"),
        ("QUALFLOW_LOG_LEVEL", "chatty"),
        ("QUALFLOW_SESSION_MAX_AGE", "0"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_keys_file_is_generated_once_with_owner_only_mode(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    keys, source = load_or_create_keys(settings)
    assert source == "file"
    assert len(keys) == 1
    path = settings.secret_keys_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, _ = load_or_create_keys(settings)
    assert again == keys
    box = secret_box_for(settings)
    assert box.decrypt(SecretBox(keys).encrypt("hello world")) == "hello world"


def test_empty_keys_file_is_an_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    settings.secret_keys_file.write_text("\n")
    with pytest.raises(SecretKeyError, match="holds no keys"):
        load_or_create_keys(settings)


def test_a_keys_file_readable_by_others_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    load_or_create_keys(settings)
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    settings.secret_keys_file.chmod(0o644)
    load_or_create_keys(settings)
    assert "readable by others" in caplog.text
