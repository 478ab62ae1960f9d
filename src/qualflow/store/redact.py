"""Keep secrets out of logs: a structlog processor, a stdlib logging filter, and the log setup.

Two rules, applied to every record:

* a value under a sensitive key (``token``, ``secret``, ``password``, ``api_key``,
  ``authorization``, ``x-api-token``, ``cookie``… in any case, also as part of a longer key such as
  ``api_token`` or ``client_secret``) is replaced whole;
* any secret the process has seen (every value a :class:`~qualflow.store.secrets.SecretBox`
  encrypted or decrypted, plus anything passed to :func:`register_secret`) is replaced wherever it
  appears inside a message or value.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from qualflow.store.secrets import register_secret, secrets_by_prefix

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "configure_logging",
    "install_log_redaction",
    "is_sensitive_key",
    "redact_event",
    "redact_text",
    "redact_value",
    "register_secret",
]

REDACTED = "[REDACTED]"

# Mirrors qualflow.store.secrets: registered secrets are at least 6 characters, indexed by 4.
_MIN_SECRET_LENGTH = 6
_PREFIX_LENGTH = 4

_SENSITIVE_KEY = re.compile(
    r"(token|secret|passw(or)?d|api[_-]?key|authorization|cookie|credential|private[_-]?key)",
    re.IGNORECASE,
)
# "Bearer xyz" / "X-API-TOKEN: xyz" / "password=xyz" written inside free text.
_INLINE_SECRET = re.compile(
    r"(?P<label>\b(?:bearer|basic)\s+|"
    r"\b(?:x-api-token|api[_-]?token|api[_-]?key|password|secret|token)\b\s*[:=]\s*)"
    r"(?P<value>[^\s,;&\"']+)",
    re.IGNORECASE,
)


def is_sensitive_key(key: object) -> bool:
    return isinstance(key, str) and _SENSITIVE_KEY.search(key) is not None


def _scrub_known(text: str) -> str:
    index = secrets_by_prefix()
    if not index:
        return text
    pieces: list[str] = []
    position = copied = 0
    last_start = len(text) - _MIN_SECRET_LENGTH
    while position <= last_start:
        candidates = index.get(text[position : position + _PREFIX_LENGTH])
        match = candidates.longest_at(text, position) if candidates is not None else None
        if match is None:
            position += 1
            continue
        pieces.append(text[copied:position])
        pieces.append(REDACTED)
        position += len(match)
        copied = position
    if not pieces:
        return text
    pieces.append(text[copied:])
    return "".join(pieces)


def redact_text(text: str) -> str:
    """Replace known secrets and inline ``label: secret`` pairs inside a string."""
    text = _scrub_known(text)
    return _INLINE_SECRET.sub(lambda match: match.group("label") + REDACTED, text)


def redact_value(value: Any, *, _depth: int = 0) -> Any:
    """Redact a log value: strings are scrubbed, mappings and sequences walked (a few levels)."""
    if isinstance(value, str):
        return redact_text(value)
    if _depth > 4:
        return value
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if is_sensitive_key(key) and item
            else redact_value(item, _depth=_depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item, _depth=_depth + 1) for item in value)
    if isinstance(value, bytes | bytearray):
        return redact_text(bytes(value).decode("utf-8", "replace"))
    return value


def redact_event(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: redact every key and value of the event."""
    for key in list(event_dict):
        value = event_dict[key]
        if key != "event" and is_sensitive_key(key) and value:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = redact_value(value)
    return event_dict


class RedactingFilter(logging.Filter):
    """stdlib logging filter: redacts the message, exception text and ``extra=`` attributes."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        for key, value in list(vars(record).items()):
            if key in _RECORD_FIELDS:
                continue
            if is_sensitive_key(key) and value:
                setattr(record, key, REDACTED)
            elif isinstance(value, str | Mapping | list | tuple):
                setattr(record, key, redact_value(value))
        return True


_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


def _redact_record(record: logging.LogRecord) -> None:
    if isinstance(record.msg, Mapping):
        # structlog hands its event dict to stdlib as the message; keep it a dict.
        record.msg = redact_value(record.msg)
    elif not _redact_args_in_place(record):
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact_text(record.exc_text)


def _redact_arg(value: Any) -> Any:
    if isinstance(value, str | Mapping | list | tuple | bytes | bytearray):
        return redact_value(value)
    return value


def _redact_args_in_place(record: logging.LogRecord) -> bool:
    """Redact a ``%``-style record's arguments one by one, keeping its format and arguments.

    Formatters that read ``record.args`` themselves (uvicorn's access log unpacks a 5-tuple)
    need them kept. That is only done when it is enough: formatting the redacted arguments must
    yield a message with nothing left to redact (a secret in the format string itself, or one
    split across arguments, falls back to flattening the message). Returns whether it was done.
    """
    args = record.args
    if not args or not isinstance(record.msg, str):
        return False
    redacted: Any
    if isinstance(args, Mapping):
        redacted = {key: _redact_arg(value) for key, value in args.items()}
    elif isinstance(args, tuple):
        redacted = tuple(_redact_arg(value) for value in args)
    else:  # pragma: no cover - LogRecord normalises args to a tuple or a mapping
        return False
    try:
        message = record.msg % redacted
    except (TypeError, ValueError, KeyError):
        return False
    if redact_text(message) != message:
        return False
    record.args = redacted
    return True


_installed_factory: Any = None


def install_log_redaction() -> None:
    """Redact every stdlib log record as it is created, whichever handler ends up writing it.

    Idempotent. Handler-level filtering alone would miss handlers added later (test capture,
    an operator's own logging config); redacting at record creation covers them all.
    """
    global _installed_factory
    current = logging.getLogRecordFactory()
    if current is _installed_factory and current is not None:
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        _redact_record(record)
        return record

    _installed_factory = factory
    logging.setLogRecordFactory(factory)


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    """Route stdlib logging and structlog through one redacting pipeline on stderr."""
    install_log_redaction()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_event,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    handler.set_name("qualflow")
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "qualflow":
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
