"""No secret reaches a log line, whichever logging API wrote it."""

from __future__ import annotations

import logging
import string
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from qualflow.store.redact import (
    REDACTED,
    configure_logging,
    install_log_redaction,
    redact_event,
    redact_text,
)
from qualflow.store.secrets import SecretBox, register_secret, secrets_by_prefix


@pytest.fixture(autouse=True)
def _redaction() -> None:
    install_log_redaction()


def test_stdlib_messages_and_args_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    box = SecretBox([SecretBox.generate_key()])
    stored = box.encrypt("tok_live_9f8e7d6c5b4a")
    box.decrypt(stored)
    with caplog.at_level(logging.INFO):
        logging.getLogger("qualflow.test").info(
            "calling Qualtrics with %s", "tok_live_9f8e7d6c5b4a"
        )
        logging.getLogger("qualflow.test").warning("X-API-TOKEN: abcdefghij failed")
    assert "tok_live_9f8e7d6c5b4a" not in caplog.text
    assert "abcdefghij" not in caplog.text
    assert REDACTED in caplog.text


def test_exception_text_is_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    register_secret("oauth-secret-123456")
    with caplog.at_level(logging.ERROR):
        try:
            raise RuntimeError("bad client secret oauth-secret-123456")
        except RuntimeError:
            logging.getLogger("qualflow.test").exception("token exchange failed")
    assert "oauth-secret-123456" not in caplog.text
    assert "token exchange failed" in caplog.text


def test_structlog_events_redact_sensitive_keys_and_known_values() -> None:
    register_secret("brand-admin-token-777777")
    event = redact_event(
        None,
        "info",
        {
            "event": "provisioning with brand-admin-token-777777",
            "api_token": "whatever-value",
            "Authorization": "Bearer xyz",
            "headers": {"X-API-TOKEN": "abc", "Accept": "application/json"},
            "survey": "SV_123",
        },
    )
    assert event["event"] == f"provisioning with {REDACTED}"
    assert event["api_token"] == REDACTED
    assert event["Authorization"] == REDACTED
    assert event["headers"] == {"X-API-TOKEN": REDACTED, "Accept": "application/json"}
    assert event["survey"] == "SV_123"


@pytest.mark.usefixtures("configured")
def test_configured_pipeline_writes_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    register_secret("smtp-password-424242")
    configure_logging("INFO")
    structlog.get_logger("qualflow.test").info(
        "sending mail", password="smtp-password-424242", detail="pw smtp-password-424242"
    )
    logging.getLogger("qualflow.test").info("login as user:smtp-password-424242")
    written = capsys.readouterr().err
    assert "sending mail" in written
    assert "login as user" in written
    assert "smtp-password-424242" not in written


def test_inline_labels_are_scrubbed() -> None:
    assert redact_text("Authorization: Bearer abc.def") == f"Authorization: Bearer {REDACTED}"
    assert redact_text("password=hunter22&x=1") == f"password={REDACTED}&x=1"
    assert redact_text("nothing to hide here") == "nothing to hide here"


_ALNUM = st.text(alphabet=string.ascii_letters + string.digits, min_size=6, max_size=40)


@given(secret=_ALNUM, before=st.text(max_size=60), after=st.text(max_size=60))
def test_a_registered_secret_never_survives_redaction(secret: str, before: str, after: str) -> None:
    register_secret(secret)
    assert secret not in redact_text(before + secret + after + secret)


def test_redaction_stays_correct_with_thousands_of_secrets() -> None:
    codes = [f"GIFT-{n:06d}-{n * 7919 % 100000:05d}" for n in range(5000)]
    for code in codes:
        register_secret(code)
    line = f"delivered {codes[1234]} and {codes[4321]} to respondent R_abc"
    assert redact_text(line) == f"delivered {REDACTED} and {REDACTED} to respondent R_abc"


def test_the_registry_keeps_the_newest_secrets_and_skips_bulk_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from qualflow.store import secrets

    monkeypatch.setattr(secrets, "_MAX_KNOWN", 100)
    codes = [f"POOL-{n:05d}-{n * 7919 % 100000:05d}" for n in range(300)]
    for code in codes:
        register_secret(code)
    delivery = '{"credentials": [' + ", ".join(f'"{c}"' for c in codes[:40]) + "]}"
    register_secret(delivery)  # data, not a credential: too long to be one

    assert len(secrets._known) == 100
    assert redact_text(f"sent {codes[-1]}") == f"sent {REDACTED}"
    assert redact_text(f"sent {codes[0]}") == f"sent {codes[0]}"  # forgotten: the oldest
    assert delivery not in secrets._known
    assert sum(len(group) for group in secrets_by_prefix().values()) == 100


class _Capture(logging.Handler):
    """Formats records like a real handler, failing the test on a logging error."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.lines: list[str] = []
        self.errors: list[BaseException | None] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        import sys

        self.errors.append(sys.exc_info()[1])


def _uvicorn_access_line(path: str) -> tuple[list[str], list[BaseException | None]]:
    """Log one access line exactly as uvicorn's HTTP protocols do, through uvicorn's formatter."""
    from uvicorn.config import LOGGING_CONFIG
    from uvicorn.logging import AccessFormatter

    pattern = LOGGING_CONFIG["formatters"]["access"]["fmt"]
    handler = _Capture(AccessFormatter(pattern, use_colors=False))
    logger = logging.getLogger("uvicorn.access")
    logger.addHandler(handler)
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:51234", "GET", path, "1.1", 200)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
    return handler.lines, handler.errors


@pytest.mark.usefixtures("configured")
def test_uvicorn_access_log_lines_format_without_a_logging_error() -> None:
    configure_logging("INFO")
    lines, errors = _uvicorn_access_line("/api/v1/automations?limit=5")
    assert errors == []
    expected = 'INFO:     127.0.0.1:51234 - "GET /api/v1/automations?limit=5 HTTP/1.1" 200 OK'
    assert lines == [expected]


def test_uvicorn_access_log_lines_keep_secrets_out() -> None:
    register_secret("url-secret-4b3c2d1e")
    lines, errors = _uvicorn_access_line("/hooks/x?token=plain-token-value&key=url-secret-4b3c2d1e")
    assert errors == []
    assert len(lines) == 1
    assert "plain-token-value" not in lines[0]
    assert "url-secret-4b3c2d1e" not in lines[0]
    assert lines[0].startswith('INFO:     127.0.0.1:51234 - "GET /hooks/x?token=')
    assert lines[0].endswith(' HTTP/1.1" 200 OK')


def test_a_secret_in_the_format_string_still_flattens_the_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("qualflow.test").info("password=%s for %s", "hunter2-long", "ann")
    assert "hunter2-long" not in caplog.text
    assert "for ann" in caplog.text


@pytest.mark.usefixtures("configured")
def test_our_pipeline_renders_uvicorn_access_records(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A uvicorn started earlier in this process may have given its access logger its own
    # handlers and stopped propagation; this test is about our pipeline, so route it there.
    for name in ("uvicorn", "uvicorn.access"):
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", [])
        monkeypatch.setattr(logger, "propagate", True)
        monkeypatch.setattr(logger, "disabled", False)
        monkeypatch.setattr(logger, "level", logging.NOTSET)
    access = logging.getLogger("uvicorn.access")
    configure_logging("INFO")
    access.info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "POST", "/healthz?token=abcdefgh", "1.1", 204
    )
    err = capsys.readouterr().err
    assert "Logging error" not in err
    assert '"POST /healthz?token=[REDACTED] HTTP/1.1" 204' in err


@pytest.fixture
def configured() -> Iterator[None]:
    """Our logging setup, installed in the test (to write to its captured stderr), then removed."""
    try:
        yield
    finally:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if handler.get_name() == "qualflow":
                root.removeHandler(handler)
        structlog.reset_defaults()
