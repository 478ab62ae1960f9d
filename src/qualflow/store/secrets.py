"""Secrets at rest: MultiFernet encryption, an encrypted column type, key files and rotation.

Every secret qualflow stores (Qualtrics tokens, OAuth client secrets, reward keys, webhook shared
keys…) goes through a :class:`SecretBox`. Models declare such columns with
:class:`EncryptedString`; the box in use is attached to the SQLAlchemy engine
(:func:`attach_secret_box`) so reads and writes encrypt and decrypt transparently, and
``qualflow secrets rotate`` can find every encrypted column from the metadata alone.

Keys are Fernet keys, newest first: the first encrypts, all of them decrypt. They come from
``QUALFLOW_SECRET_KEYS`` or, for the embedded default, from ``<data_dir>/secret.keys`` (created
with mode 0600 on first start).
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Engine, Text, inspect, make_url, select, type_coerce, update
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.schema import Column, MetaData, Table
from sqlalchemy.types import TypeDecorator

from qualflow.settings import Settings

__all__ = [
    "EncryptedString",
    "EncryptedText",
    "SecretBox",
    "SecretDecryptionError",
    "SecretKeyError",
    "attach_secret_box",
    "encrypted_columns",
    "load_or_create_keys",
    "mask",
    "register_secret",
    "rotate_database",
    "secret_box_for",
    "secrets_by_prefix",
    "stored_ciphertext_samples",
    "write_keys_file",
]

log = logging.getLogger(__name__)

MASK_PREFIX = "••••"
_NOT_A_KEY = "is not a valid Fernet key (32 url-safe base64 bytes)"
# Short strings are too easy to match by accident to be worth scrubbing from every log line.
_MIN_REGISTERED_LENGTH = 6


class SecretKeyError(ValueError):
    """A configured key is not a valid Fernet key, or no key is available."""


class SecretDecryptionError(ValueError):
    """A ciphertext was made with a key that is not in the configured key list, or is corrupt."""


def mask(secret: str | None) -> str:
    """Show a secret as ``••••1234``: its last 4 characters at most, never more.

    Secrets shorter than 8 characters are masked entirely, since their last 4 would be half of them.
    """
    if not secret:
        return ""
    if len(secret) < 8:
        return MASK_PREFIX
    return MASK_PREFIX + secret[-4:]


# --- the set of secret values the log redactor scrubs ------------------------------------------

_known_lock = threading.Lock()
#: Registered secrets, oldest first.
_known: OrderedDict[str, None] = OrderedDict()
# Secrets by their first characters, then by length: the redactor looks up each position of a
# log line here, which stays fast however many secrets the process has seen (one regex of
# thousands of alternatives would not), and so does registering them (codes of one pool share
# their first characters: adding to a sorted list per prefix made imports quadratic).
_PREFIX_LENGTH = 4


class SamePrefix:
    """The registered secrets that begin alike. Readers take no lock: ``lengths`` (longest
    first, so a secret that contains another is replaced whole) is replaced, never mutated,
    and the sets are only tested for membership."""

    __slots__ = ("by_length", "lengths")

    def __init__(self) -> None:
        self.lengths: tuple[int, ...] = ()
        self.by_length: dict[int, set[str]] = {}

    def __len__(self) -> int:
        return sum(len(values) for values in self.by_length.values())

    def add(self, value: str) -> None:
        same_length = self.by_length.get(len(value))
        if same_length is None:
            self.by_length[len(value)] = {value}
            self.lengths = tuple(sorted(self.by_length, reverse=True))
        else:
            same_length.add(value)

    def discard(self, value: str) -> None:
        same_length = self.by_length.get(len(value))
        if same_length is None:
            return
        same_length.discard(value)
        if not same_length:
            self.lengths = tuple(n for n in self.lengths if n != len(value))
            del self.by_length[len(value)]

    def longest_at(self, text: str, position: int) -> str | None:
        """The longest of these secrets that ``text`` holds at ``position``, if any."""
        for length in self.lengths:
            candidate = text[position : position + length]
            if candidate in self.by_length.get(length, ()):
                return candidate
        return None


_by_prefix: dict[str, SamePrefix] = {}
#: Credentials are short; a longer encrypted value is data (a reward's delivery record, say)
#: whose credentials are registered on their own when they pass through a box.
_MAX_REGISTERED_LENGTH = 512
#: The process remembers this many (the newest): a worker decrypting a gift code per reward
#: must not grow without bound.
_MAX_KNOWN = 50_000


def register_secret(value: str | None) -> None:
    """Remember a secret value so log redaction replaces it wherever it appears."""
    if not value or not _MIN_REGISTERED_LENGTH <= len(value) <= _MAX_REGISTERED_LENGTH:
        return
    with _known_lock:
        if value in _known:
            return
        _known[value] = None
        group = _by_prefix.get(value[:_PREFIX_LENGTH])
        if group is None:
            group = _by_prefix[value[:_PREFIX_LENGTH]] = SamePrefix()
        group.add(value)
        while len(_known) > _MAX_KNOWN:
            oldest, _ = _known.popitem(last=False)
            _forget(oldest)


def _forget(value: str) -> None:
    prefix = value[:_PREFIX_LENGTH]
    group = _by_prefix.get(prefix)
    if group is None:
        return
    group.discard(value)
    if not group.lengths:
        del _by_prefix[prefix]


def secrets_by_prefix() -> Mapping[str, SamePrefix]:
    """Registered secrets indexed by their first 4 characters (read-only view for redaction)."""
    return _by_prefix


def _multi_fernet(keys: Sequence[str]) -> MultiFernet:
    if not keys:
        raise SecretKeyError("at least one secret key is required")
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.encode("ascii") if isinstance(key, str) else key))
        except (ValueError, TypeError, UnicodeEncodeError) as exc:
            raise SecretKeyError(f"secret key #{position} {_NOT_A_KEY}") from exc
    return MultiFernet(fernets)


class SecretBox:
    """Encrypts and decrypts secrets with a list of Fernet keys (MultiFernet), newest first.

    With ``keys_file`` the box follows that file: when it changes (``qualflow secrets rotate``
    in another process), the next encryption or failed decryption picks up the new keys, so
    running processes need no restart.
    """

    def __init__(self, keys: Sequence[str], *, keys_file: Path | None = None) -> None:
        self._fernet = _multi_fernet(keys)
        self._keys = tuple(keys)
        self._keys_file = keys_file
        self._keys_file_stamp = self._stamp()
        self._reload_lock = threading.Lock()

    def _stamp(self) -> tuple[int, int] | None:
        if self._keys_file is None:
            return None
        try:
            info = self._keys_file.stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size)

    def _reload_if_changed(self) -> bool:
        """Re-read the keys file if it changed since it was read; True when keys changed."""
        if self._keys_file is None:
            return False
        stamp = self._stamp()
        if stamp is None or stamp == self._keys_file_stamp:
            return False
        with self._reload_lock:
            if stamp == self._keys_file_stamp:
                return False
            try:
                keys = read_keys_file(self._keys_file)
                fernet = _multi_fernet(keys)
            except (OSError, SecretKeyError) as exc:
                log.warning("ignoring unreadable keys file %s: %s", self._keys_file, exc)
                return False
            self._keys_file_stamp = stamp
            changed = tuple(keys) != self._keys
            self._fernet, self._keys = fernet, tuple(keys)
            return changed

    @staticmethod
    def generate_key() -> str:
        """A fresh random Fernet key."""
        return Fernet.generate_key().decode("ascii")

    @property
    def keys(self) -> tuple[str, ...]:
        return self._keys

    def encrypt(self, plaintext: str, *, secret: bool = True) -> str:
        """Encrypt with the newest key; the plaintext is registered for log redaction unless
        it is data rather than a secret (``secret=False``)."""
        if secret:
            register_secret(plaintext)
        self._reload_if_changed()
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str, *, secret: bool = True) -> str:
        """Decrypt with whichever configured key made the ciphertext (and register the
        plaintext for log redaction, as :meth:`encrypt` does)."""
        try:
            try:
                token = ciphertext.encode("ascii")
                plaintext = self._fernet.decrypt(token).decode("utf-8")
            except InvalidToken:
                if not self._reload_if_changed():
                    raise
                plaintext = self._fernet.decrypt(token).decode("utf-8")
        except (InvalidToken, UnicodeEncodeError) as exc:
            raise SecretDecryptionError(
                "a stored secret cannot be decrypted with the configured keys "
                "(was a key removed from QUALFLOW_SECRET_KEYS / secret.keys?)"
            ) from exc
        if secret:
            register_secret(plaintext)
        return plaintext

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt a ciphertext (made with any configured key) with the newest key."""
        try:
            return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeEncodeError) as exc:
            raise SecretDecryptionError(
                "a stored secret cannot be decrypted with the configured keys"
            ) from exc

    def with_new_key(self, key: str | None = None) -> SecretBox:
        """A box whose newest key is ``key`` (generated when omitted), keeping the older ones."""
        return SecretBox([key or self.generate_key(), *self._keys])

    def __repr__(self) -> str:
        return f"SecretBox(<{len(self._keys)} keys>)"


# --- key files ----------------------------------------------------------------------------------


def write_keys_file(path: Path, keys: Sequence[str]) -> None:
    """Write keys (one per line, newest first) atomically, readable by the owner only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write("\n".join(keys) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_keys_file(path: Path) -> list[str]:
    lines = path.read_text(encoding="ascii").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _is_fernet_key(key: str) -> bool:
    try:
        Fernet(key.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError):
        return False
    return True


def _check_keys_file(path: Path) -> None:
    """Name the line of a key that is not one (the key itself is not shown: it may be a
    real key with one character lost)."""
    for number, line in enumerate(path.read_text(encoding="ascii").splitlines(), start=1):
        key = line.strip()
        if key and not key.startswith("#") and not _is_fernet_key(key):
            raise SecretKeyError(f"{path} line {number} {_NOT_A_KEY}; restore it from a backup")


def _database_holds_ciphertexts(database_url: str) -> bool:
    """Whether some encrypted column already holds a value made with a key."""
    # Imported here: the models import this module for their column types.
    from qualflow.store.base import Base
    from qualflow.store.db import make_engine
    from qualflow.store.models_registry import load_all

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).exists()):
        return False  # connecting would create the file
    load_all()
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            # The newest rows first; only when they hold none, every row. This runs only while
            # the keys file is missing (a first start, or a lost file), and a lost file must be
            # noticed even when the database's only secrets are old ones.
            return bool(
                stored_ciphertext_samples(connection, Base.metadata)
                or stored_ciphertext_samples(connection, Base.metadata, window=None)
            )
    finally:
        engine.dispose()


# The newest rows an encrypted column is sampled from at every start. Every encrypted table is
# keyed by an autoincrement id, so these are the rows written last, with the newest key: a key
# list that opens none of them does not hold the key secrets are written with today (what the
# start check refuses). A nullable column (email_outbox.body_html is NULL for text-only emails)
# then costs this many rows, not the whole table.
SAMPLE_WINDOW = 100


def stored_ciphertext_samples(
    connection: Connection, metadata: MetaData, *, window: int | None = SAMPLE_WINDOW
) -> list[str]:
    """One stored Fernet token (raw, not decrypted) per encrypted column that holds any among its
    ``window`` newest rows (by primary key), or among all its rows when ``window`` is None."""
    existing = set(inspect(connection).get_table_names())
    samples = []
    for item in encrypted_columns(metadata):
        if item.table.name not in existing:
            continue
        raw = type_coerce(item.column, Text)
        if window is None:
            query = select(raw).where(raw.startswith(_TOKEN_PREFIX)).limit(1)
        else:
            newest = (
                select(raw.label("value"))
                .order_by(*(column.desc() for column in item.table.primary_key.columns))
                .limit(window)
                .subquery()
            )
            query = select(newest.c.value).where(newest.c.value.startswith(_TOKEN_PREFIX)).limit(1)
        sample = connection.execute(query).scalar()
        if sample is not None:
            samples.append(sample)
    return samples


def load_or_create_keys(settings: Settings) -> tuple[list[str], str]:
    """The configured keys and where they came from (``"env"`` or ``"file"``).

    Without ``QUALFLOW_SECRET_KEYS`` the keys file in the data dir is used, and created with one
    fresh key (mode 0600) when it does not exist yet and the database holds no secret yet.
    """
    if settings.secret_keys:
        keys = [key.get_secret_value() for key in settings.secret_keys]
        for position, key in enumerate(keys, start=1):
            if not _is_fernet_key(key):
                raise SecretKeyError(f"QUALFLOW_SECRET_KEYS: key #{position} {_NOT_A_KEY}")
        return keys, "env"
    path = settings.secret_keys_file
    if not path.exists():
        # A lost file must not be replaced: a new key cannot read what is stored, and secrets
        # saved with it would be unreadable once the real file is restored.
        if _database_holds_ciphertexts(settings.database_url):
            raise SecretKeyError(
                f"{path} is missing but the database holds secrets encrypted with its keys: "
                "restore the file from a backup (or set QUALFLOW_SECRET_KEYS to its keys)"
            )
        write_keys_file(path, [SecretBox.generate_key()])
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s is readable by others (mode %o); restrict it with chmod 600", path, mode)
    _check_keys_file(path)
    keys = read_keys_file(path)
    if not keys:
        raise SecretKeyError(f"{path} holds no keys")
    return keys, "file"


def secret_box_for(settings: Settings) -> SecretBox:
    """The :class:`SecretBox` for these settings (creating the keys file when needed)."""
    keys, source = load_or_create_keys(settings)
    return SecretBox(keys, keys_file=settings.secret_keys_file if source == "file" else None)


# --- the column type ----------------------------------------------------------------------------

_DIALECT_ATTRIBUTE = "_qualflow_secret_box"
_default_box: SecretBox | None = None


def attach_secret_box(engine: Engine, box: SecretBox, *, default: bool = True) -> None:
    """Make ``engine`` encrypt/decrypt :class:`EncryptedString` columns with ``box``.

    With ``default`` the box also serves engines that have none attached (e.g. an engine the
    workflow runtime created itself from the same database URL).
    """
    global _default_box
    setattr(engine.dialect, _DIALECT_ATTRIBUTE, box)
    if default:
        _default_box = box


def _box_for(dialect: Dialect) -> SecretBox:
    box = getattr(dialect, _DIALECT_ATTRIBUTE, None) or _default_box
    if box is None:
        raise SecretKeyError(
            "no SecretBox is attached to this database engine; "
            "call qualflow.store.secrets.attach_secret_box(engine, box)"
        )
    return box


class EncryptedString(TypeDecorator[str]):
    """A string column stored as a Fernet token: encrypted on write, decrypted on read."""

    impl = Text
    cache_ok = True
    #: Whether the column's values are credentials, registered for log redaction.
    holds_secrets: ClassVar[bool] = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return _box_for(dialect).encrypt(value, secret=self.holds_secrets)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return _box_for(dialect).decrypt(value, secret=self.holds_secrets)


#: How every Fernet token begins (version byte 0x80, then a timestamp's high zero bytes).
_TOKEN_PREFIX = "gAAAAA"


class EncryptedText(EncryptedString):
    """Encrypted data that is not itself a credential (an email body, which may contain one):
    not registered for log redaction, whose registry would fill with bodies. The column held
    plain text in earlier builds: a stored value that is not a Fernet token is read as it is
    (``qualflow secrets rotate`` encrypts such rows); everything written is encrypted."""

    cache_ok = True
    holds_secrets = False

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is not None and not value.startswith(_TOKEN_PREFIX):
            return value
        return super().process_result_value(value, dialect)


# --- rotation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncryptedColumn:
    table: Table
    column: Column[Any]

    @property
    def label(self) -> str:
        return f"{self.table.name}.{self.column.name}"


def encrypted_columns(metadata: MetaData) -> list[EncryptedColumn]:
    """Every column holding ciphertexts: typed :class:`EncryptedString`, or ``info={"encrypted":
    True}`` for columns that store Fernet tokens made by hand with a :class:`SecretBox`."""
    found = []
    for table in metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, EncryptedString) or column.info.get("encrypted") is True:
                found.append(EncryptedColumn(table, column))
    return found


@dataclass(frozen=True)
class RotationReport:
    columns: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.columns.values())


def rotate_database(connection: Connection, box: SecretBox, metadata: MetaData) -> RotationReport:
    """Re-encrypt every stored secret with ``box``'s newest key, inside the caller's transaction.

    Rows are read and written as raw ciphertext, so nothing is decrypted into the session and a
    failure anywhere leaves every row as it was (the caller's transaction rolls back).
    """
    existing = set(inspect(connection).get_table_names())
    counts: dict[str, int] = {}
    for item in encrypted_columns(metadata):
        if item.table.name not in existing:
            continue
        primary_key = list(item.table.primary_key.columns)
        if not primary_key:
            raise SecretKeyError(f"table {item.table.name} has no primary key; cannot rotate")
        raw = type_coerce(item.column, Text)
        rows = connection.execute(select(*primary_key, raw).where(item.column.is_not(None)))
        changed = 0
        plain_before = isinstance(item.column.type, EncryptedText)
        for row in rows.all():
            *key_values, ciphertext = row
            if plain_before and not ciphertext.startswith(_TOKEN_PREFIX):
                rotated = box.encrypt(ciphertext)  # written before the column was encrypted
            else:
                rotated = box.rotate(ciphertext)
            condition = [col == value for col, value in zip(primary_key, key_values, strict=True)]
            connection.execute(
                update(item.table)
                .where(*condition)
                # type_coerce bypasses EncryptedString's bind step: the value is already encrypted.
                .values({item.column.name: type_coerce(rotated, Text)})
            )
            changed += 1
        counts[item.label] = changed
    return RotationReport(counts)
