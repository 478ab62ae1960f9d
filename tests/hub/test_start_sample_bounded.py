"""The start-up sample of stored ciphertexts reads a bounded number of rows per column.

Every CLI command and app start samples one ciphertext per encrypted column; a nullable column
(``email_outbox.body_html`` is NULL for text-only emails) must not make that read the whole table.
Rows read are counted by SQLite's virtual-machine steps, which grow with the rows a query visits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from qualflow.settings import Settings
from qualflow.store.base import Base
from qualflow.store.models_registry import load_all
from qualflow.store.secrets import (
    SecretBox,
    SecretKeyError,
    load_or_create_keys,
    stored_ciphertext_samples,
)

BOX = SecretBox([SecretBox.generate_key()])


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    load_all()
    engine = create_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def _add_emails(engine: Engine, count: int, *, body_text: str, body_html: str | None) -> None:
    # Raw inserts: the values are stored as given (a ciphertext made here, or a legacy plaintext).
    start = _count(engine)
    rows = [{"key": f"k{start + n}", "text": body_text, "html": body_html} for n in range(count)]
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO email_outbox (idempotency_key, sender, recipients, subject, body_text,"
                " body_html, status, attempts, created_at, next_attempt_at) VALUES (:key,"
                " 'a@example.org', '[]', 's', :text, :html, 'sent', 1, '2026-01-01 00:00:00',"
                " '2026-01-01 00:00:00')"
            ),
            rows,
        )


def _count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM email_outbox")).scalar_one())


def _steps_to_sample(engine: Engine) -> tuple[int, list[str]]:
    steps = 0

    def count_step() -> int:
        nonlocal steps
        steps += 1
        return 0

    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        raw.set_progress_handler(count_step, 1)
        try:
            samples = stored_ciphertext_samples(connection, Base.metadata)
        finally:
            raw.set_progress_handler(None, 1)
    return steps, samples


def test_text_only_emails_do_not_make_the_sample_read_the_whole_outbox(engine: Engine) -> None:
    _add_emails(engine, 1000, body_text=BOX.encrypt("hello"), body_html=None)
    steps_at_1000, samples = _steps_to_sample(engine)
    assert len(samples) == 1  # body_text's; body_html holds none
    _add_emails(engine, 9000, body_text=BOX.encrypt("hello"), body_html=None)
    steps_at_10000, samples = _steps_to_sample(engine)
    assert len(samples) == 1
    # Ten times the emails, the same work: the sample does not visit every row.
    assert steps_at_10000 <= steps_at_1000 * 1.2, (steps_at_1000, steps_at_10000)


def test_the_sample_still_finds_a_recent_ciphertext_in_a_mostly_null_column(engine: Engine) -> None:
    _add_emails(engine, 500, body_text=BOX.encrypt("hello"), body_html=None)
    html = BOX.encrypt("<p>hello</p>")
    _add_emails(engine, 1, body_text=BOX.encrypt("hello"), body_html=html)
    _add_emails(engine, 5, body_text=BOX.encrypt("hello"), body_html=None)
    _steps, samples = _steps_to_sample(engine)
    assert html in samples
    assert len(samples) == 2


def test_a_lost_keys_file_is_not_replaced_when_the_only_ciphertext_is_an_old_one(
    engine: Engine, tmp_path: Path
) -> None:
    # One old email with an encrypted HTML body, then many legacy (plaintext) text-only ones: the
    # newest rows hold no ciphertext, the database still does.
    _add_emails(engine, 1, body_text="legacy", body_html=BOX.encrypt("<p>old</p>"))
    _add_emails(engine, 3000, body_text="legacy", body_html=None)
    settings = Settings(
        data_dir=tmp_path, database_url=engine.url.render_as_string(hide_password=False)
    )
    with pytest.raises(SecretKeyError, match="is missing"):
        load_or_create_keys(settings)
    assert not (tmp_path / "secret.keys").exists()


def test_keys_file_is_created_for_a_database_without_ciphertexts(
    engine: Engine, tmp_path: Path
) -> None:
    _add_emails(engine, 300, body_text="legacy", body_html=None)
    settings = Settings(
        data_dir=tmp_path, database_url=engine.url.render_as_string(hide_password=False)
    )
    keys, source = load_or_create_keys(settings)
    assert source == "file"
    assert len(keys) == 1
    assert (tmp_path / "secret.keys").exists()
