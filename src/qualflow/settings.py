"""Every knob qualflow reads from its environment, in one place.

Each field maps to an environment variable with the ``QUALFLOW_`` prefix (``data_dir`` ↔
``QUALFLOW_DATA_DIR``). The README's "Settings" section documents them all; keep the two in step.
"""

from __future__ import annotations

from email.utils import getaddresses
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
EngineMode = Literal["embedded", "web", "off"]

SECRET_KEYS_FILENAME = "secret.keys"


#: The URL schemes of the databases qualflow runs on, with the drivers it ships.
_DATABASE_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg")


class Settings(BaseSettings):
    """qualflow's configuration, read from ``QUALFLOW_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="QUALFLOW_", extra="ignore", frozen=True)

    data_dir: Path = Field(
        default=Path(".qualflow"),
        description="Directory for the embedded database, generated secret keys and exports.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means a SQLite file `qualflow.db` in the data dir. "
        "`postgresql://…` switches every table (and the engine's system tables) to PostgreSQL.",
    )
    auto_migrate: bool | None = Field(
        default=None,
        description="Upgrade the database schema when the web app starts. Unset: yes on SQLite, "
        "no on PostgreSQL (run `qualflow migrate` once per release there).",
    )
    secret_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated Fernet keys, newest first. Empty: keys are read from (or, on "
        "first start, generated into) `<data_dir>/secret.keys`.",
    )
    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The URL the outside world (Qualtrics webhooks, people) reaches this hub at.",
    )
    host: str = Field(default="127.0.0.1", description="Interface `qualflow serve` binds to.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port `qualflow serve` binds to.")

    engine: EngineMode = Field(
        default="embedded",
        description="What the web app runs: `embedded` (web + engine executing runs, one "
        "process), `web` (records events and queues runs for `qualflow worker` processes; "
        "PostgreSQL), `off` (no engine: UI and API only).",
    )

    inbound_events_retention_days: int = Field(
        default=30,
        ge=0,
        description="Days recorded webhook/JSON-event deliveries are kept (0: forever). "
        "Accepted deliveries not yet turned into runs are always kept.",
    )
    response_cache_retention_hours: int = Field(
        default=24,
        ge=0,
        description="Hours responses fetched in bulk stay cached for runs (0: forever).",
    )
    prune_interval_minutes: int = Field(
        default=60,
        ge=0,
        description="Minutes between two prunes of old events and cached responses by each web "
        "process (0: never prune).",
    )

    smtp_host: str | None = Field(default=None, description="SMTP server for outgoing email.")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = Field(default="qualflow@localhost", description="From address of emails.")
    smtp_starttls: bool = False

    log_level: LogLevel = "INFO"

    session_cookie_name: str = Field(default="qualflow_session", min_length=1)
    session_max_age: int = Field(
        default=14 * 24 * 3600, gt=0, description="Seconds a UI sign-in stays valid."
    )
    session_cookie_secure: bool | None = Field(
        default=None,
        description="Send the session cookie over HTTPS only. Unset: on when public_base_url is "
        "https.",
    )

    @field_validator("secret_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("public_base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("public_base_url must start with http:// or https://")
        if not urlsplit(value).hostname:
            # Every webhook URL Qualtrics is given is built from it.
            raise ValueError(f"{value!r} names no host, e.g. https://hub.example.org")
        return value.rstrip("/")

    @field_validator("smtp_password")
    @classmethod
    def _check_login(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # Without a username no login is attempted: the password would go unused, silently.
        if value is not None and value.get_secret_value() and not info.data.get("smtp_username"):
            raise ValueError("is set but QUALFLOW_SMTP_USERNAME is not: set both to log in")
        return value

    @field_validator("smtp_from")
    @classmethod
    def _check_sender(cls, value: str) -> str:
        # Checked here: the SMTP server would refuse every email, one at a time, instead.
        addresses = getaddresses([value])
        bare = addresses[0][1] if len(addresses) == 1 else ""
        local, _, domain = bare.partition("@")
        if not local or not domain or "@" in domain or any(c.isspace() for c in bare):
            raise ValueError(
                f"{value!r} is not one email address, e.g. qualflow@example.org "
                "or 'Research <research@example.org>'"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value:
            return value
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in _DATABASE_SCHEMES:
            raise ValueError(
                "must be a SQLite (sqlite:///path) or PostgreSQL (postgresql://user@host/db) URL"
            )
        return value

    @field_validator("data_dir")
    @classmethod
    def _check_data_dir(cls, value: Path) -> Path:
        if not str(value).strip() or str(value) == ".":
            # An empty variable would silently mean the current directory.
            raise ValueError("must name a directory (unset it for the default ./.qualflow)")
        return value

    @model_validator(mode="after")
    def _default_database_url(self) -> Settings:
        if not self.database_url:
            path = (self.data_dir / "qualflow.db").absolute()
            object.__setattr__(self, "database_url", f"sqlite:///{path}")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @property
    def secret_keys_file(self) -> Path:
        return self.data_dir / SECRET_KEYS_FILENAME

    @property
    def cookie_secure(self) -> bool:
        if self.session_cookie_secure is not None:
            return self.session_cookie_secure
        return self.public_base_url.startswith("https://")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
