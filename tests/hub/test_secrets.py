"""Secrets at rest: encryption, the encrypted column type, masking and key rotation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from qualflow.accounts.users import create_user
from qualflow.connections.models import Connection
from qualflow.store.base import Base
from qualflow.store.models_registry import load_all
from qualflow.store.runtime import Store
from qualflow.store.secrets import (
    EncryptedString,
    SecretBox,
    SecretDecryptionError,
    SecretKeyError,
    attach_secret_box,
    encrypted_columns,
    mask,
    rotate_database,
)

KEY_A = SecretBox.generate_key()
KEY_B = SecretBox.generate_key()


@given(st.text(max_size=500))
def test_encrypt_decrypt_round_trips_any_text(plaintext: str) -> None:
    box = SecretBox([KEY_A])
    ciphertext = box.encrypt(plaintext)
    assert box.decrypt(ciphertext) == plaintext
    # What follows Fernet's version, timestamp and IV (the first 34 characters, none of them
    # derived from the plaintext; "gAAAAAB…" starts every token) must not show the text: eight
    # characters or more, so that a chance match in random-looking base64 is out of the picture.
    if len(plaintext) >= 8:
        assert plaintext not in ciphertext[34:]


def test_decrypting_with_a_foreign_key_fails_clearly() -> None:
    ciphertext = SecretBox([KEY_A]).encrypt("s3cret-value")
    with pytest.raises(SecretDecryptionError, match="cannot be decrypted"):
        SecretBox([KEY_B]).decrypt(ciphertext)
    with pytest.raises(SecretDecryptionError):
        SecretBox([KEY_A]).decrypt("not a fernet token")


def test_invalid_keys_are_refused() -> None:
    with pytest.raises(SecretKeyError, match="#2 is not a valid Fernet key"):
        SecretBox([KEY_A, "short"])
    with pytest.raises(SecretKeyError):
        SecretBox([])


def test_rotation_keeps_old_ciphertexts_readable_and_moves_them_to_the_new_key() -> None:
    old = SecretBox([KEY_A])
    ciphertext = old.encrypt("token-1234567890")
    rotated_box = old.with_new_key(KEY_B)
    assert rotated_box.keys == (KEY_B, KEY_A)
    assert rotated_box.decrypt(ciphertext) == "token-1234567890"
    rotated = rotated_box.rotate(ciphertext)
    assert SecretBox([KEY_B]).decrypt(rotated) == "token-1234567890"
    with pytest.raises(SecretDecryptionError):
        old.decrypt(rotated)


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        (None, ""),
        ("", ""),
        ("abc", "••••"),
        ("1234567", "••••"),
        ("12345678", "••••5678"),
        ("qualtrics-token-ABCD", "••••ABCD"),
    ],
)
def test_mask_shows_last_four_at_most(secret: str | None, shown: str) -> None:
    assert mask(secret) == shown


def test_encrypted_columns_are_discovered_from_the_metadata() -> None:
    load_all()
    labels = {item.label for item in encrypted_columns(Base.metadata)}
    assert {"connections.api_token", "connections.oauth_client_secret"} <= labels


def _add_connection(store: Store, token: str) -> int:
    with store.sessionmaker() as session:
        owner = create_user(session, email="o@example.org", name="O", role="admin", password=None)
        connection = Connection(
            name="main", datacenter="iad1", auth_type="token", api_token=token, owner_id=owner.id
        )
        session.add(connection)
        session.commit()
        return connection.id


def _raw(store: Store, connection_id: int) -> str:
    with store.engine.connect() as conn:
        value = conn.execute(
            text("SELECT api_token FROM connections WHERE id = :id"), {"id": connection_id}
        ).scalar_one()
    assert isinstance(value, str)
    return value


def test_encrypted_string_stores_ciphertext_and_reads_plaintext(store: Store) -> None:
    connection_id = _add_connection(store, "qualtrics-api-token-0001")
    raw = _raw(store, connection_id)
    assert "qualtrics-api-token-0001" not in raw
    assert store.secret_box.decrypt(raw) == "qualtrics-api-token-0001"
    with store.sessionmaker() as session:
        loaded = session.get(Connection, connection_id)
        assert loaded is not None
        assert loaded.api_token == "qualtrics-api-token-0001"


def test_rotate_database_re_encrypts_every_secret_atomically(store: Store) -> None:
    connection_id = _add_connection(store, "qualtrics-api-token-0002")
    before = _raw(store, connection_id)
    new_box = store.secret_box.with_new_key()
    load_all()
    with store.engine.begin() as conn:
        report = rotate_database(conn, new_box, Base.metadata)
    assert report.columns["connections.api_token"] == 1
    assert report.columns["connections.oauth_client_secret"] == 0
    after = _raw(store, connection_id)
    assert after != before
    only_new = SecretBox([new_box.keys[0]])
    assert only_new.decrypt(after) == "qualtrics-api-token-0002"
    with pytest.raises(SecretDecryptionError):
        store.secret_box.decrypt(after)
    # The running engine reads rows with the rotated box once it is attached.
    attach_secret_box(store.engine, new_box)
    with store.sessionmaker() as session:
        loaded = session.get(Connection, connection_id)
        assert loaded is not None
        assert loaded.api_token == "qualtrics-api-token-0002"


def test_rotation_with_a_missing_key_changes_nothing(store: Store) -> None:
    connection_id = _add_connection(store, "qualtrics-api-token-0003")
    before = _raw(store, connection_id)
    unrelated = SecretBox([KEY_B])
    load_all()
    with pytest.raises(SecretDecryptionError), store.engine.begin() as conn:
        rotate_database(conn, unrelated, Base.metadata)
    assert _raw(store, connection_id) == before


def test_encrypted_string_type_is_text_underneath() -> None:
    assert EncryptedString().impl.__class__.__name__ == "Text"


def test_a_box_following_the_keys_file_picks_up_a_rotation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from qualflow.settings import Settings
    from qualflow.store.secrets import read_keys_file, secret_box_for, write_keys_file

    settings = Settings(data_dir=tmp_path)
    running = secret_box_for(settings)  # a web process started before the rotation
    old_ciphertext = running.encrypt("token-before-rotation")
    # `qualflow secrets rotate` in another process: new key first, rows re-encrypted with it.
    rotated_keys = [SecretBox.generate_key(), *read_keys_file(settings.secret_keys_file)]
    write_keys_file(settings.secret_keys_file, rotated_keys)
    rotated = SecretBox(rotated_keys).rotate(old_ciphertext)
    assert running.decrypt(rotated) == "token-before-rotation"
    # New writes of the running process use the new key, so retiring old keys loses nothing.
    written = running.encrypt("token-after-rotation")
    assert SecretBox(rotated_keys[:1]).decrypt(written) == "token-after-rotation"


def test_outbox_bodies_are_encrypted_and_older_plain_ones_stay_readable_until_rotated(
    store: Store,
) -> None:
    from qualflow.notify.email import Email, queue_email
    from qualflow.notify.models import OutboxEmail

    email = Email(to=("ada@example.org",), subject="Your reward", text="Code GIFT-7F3K-2QX9")
    queued = queue_email(store.sessionmaker, "reward:RW-1", email, sender="hub@example.org")
    with store.engine.begin() as conn:
        raw = conn.execute(
            text("SELECT body_text FROM email_outbox WHERE id = :id"), {"id": queued.id}
        ).scalar_one()
        # A row written before the column was encrypted.
        conn.execute(
            text(
                "INSERT INTO email_outbox (idempotency_key, sender, recipients, subject, body_text,"
                " status, attempts, created_at, next_attempt_at) VALUES ('old', 'hub@example.org',"
                " '[]', 'Old', 'Code OLD-CODE-1234', 'sent', 1, :now, :now)"
            ),
            {"now": "2026-01-01 00:00:00"},
        )
    assert "GIFT-7F3K-2QX9" not in raw
    with store.sessionmaker() as session:
        bodies = {row.idempotency_key: row.body_text for row in session.query(OutboxEmail)}
    assert bodies == {"reward:RW-1": "Code GIFT-7F3K-2QX9", "old": "Code OLD-CODE-1234"}
    # Data, not a credential: log redaction does not collect every body it encrypts.
    from qualflow.store import secrets

    assert "Code GIFT-7F3K-2QX9" not in secrets._known

    load_all()
    with store.engine.begin() as conn:
        report = rotate_database(conn, store.secret_box.with_new_key(), Base.metadata)
        stored = conn.execute(text("SELECT body_text FROM email_outbox")).scalars().all()
    assert report.columns["email_outbox.body_text"] == 2
    assert all(body.startswith("gAAAAA") for body in stored)  # Fernet tokens, both
