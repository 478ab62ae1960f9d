"""notify.email through the outbox to a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from email import message_from_bytes, message_from_string
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.utils import getaddresses

import pytest
from sqlalchemy import select

from qualflow.engine.automations import Automations
from qualflow.engine.errors import DefinitionError
from qualflow.engine.runs import RunDetail
from qualflow.engine.runtime import Engine
from qualflow.notify.email import SmtpPool, SmtpSettings, build_message
from qualflow.notify.models import OutboxEmail
from tests.engine.engine_support import SmtpSink

Wait = Callable[..., RunDetail]


@pytest.fixture
def engine_extras(smtp_sink: SmtpSink) -> dict[str, object]:
    return {"smtp": SmtpSettings(host="127.0.0.1", port=smtp_sink.port, sender="hub@example.org")}


def email_automation(**config: object) -> dict[str, object]:
    email = {
        "to": ["{{ trigger.data.email }}", "cx@example.org"],
        "subject": "Score {{ trigger.data.score }} from {{ trigger.data.name }}",
        "body": "Hello,\n{{ trigger.data.name }} answered {{ trigger.data.score }}.\n",
        **config,
    }
    return {
        "name": "mail",
        "trigger": {"type": "schedule", "cron": "0 3 * * *"},
        "steps": [{"action": "notify.email", "config": email}],
    }


def body_of(raw: str) -> Message:
    return message_from_string(raw)


def test_templated_email_is_delivered_once(
    engine: Engine, wait_run: Wait, smtp_sink: SmtpSink
) -> None:
    automations = Automations(engine.services)
    created = automations.create(email_automation())

    run = wait_run(
        automations.run_now(created.id, {"email": "ada@example.org", "name": "Ada", "score": 10})
    )

    assert run.status == "succeeded", run.error
    assert len(smtp_sink.messages) == 1
    message = smtp_sink.messages[0]
    assert message["to"] == ["ada@example.org", "cx@example.org"]
    parsed = body_of(message["data"])
    assert parsed["Subject"] == "Score 10 from Ada"
    assert "Ada answered 10." in parsed.get_payload()
    with engine.services.sessionmaker() as session:
        row = session.scalar(select(OutboxEmail))
        assert row is not None
        assert row.status == "sent"
        assert row.run_id == run.id
    assert run.steps[0].output["message_id"] == parsed["Message-ID"]


def test_concurrent_senders_use_at_most_the_pool_size_of_connections(smtp_sink: SmtpSink) -> None:
    settings = SmtpSettings(host="127.0.0.1", port=smtp_sink.port, sender="hub@example.org")
    pool = SmtpPool(settings, size=3)
    start = threading.Barrier(24)

    def send(n: int) -> None:
        message = EmailMessage()
        message["Subject"] = f"message {n}"
        message.set_content("hello")
        start.wait(10)
        pool.send(message, "hub@example.org", [f"r{n}@example.org"])

    try:
        threads = [threading.Thread(target=send, args=(n,)) for n in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        pool.close()

    assert sorted(m["to"][0] for m in smtp_sink.messages) == sorted(
        f"r{n}@example.org" for n in range(24)
    )
    # Senders beyond the pool's size waited for a connection instead of opening their own.
    assert smtp_sink.connections <= 3


def test_transient_smtp_refusal_is_retried(
    engine: Engine, wait_run: Wait, smtp_sink: SmtpSink
) -> None:
    smtp_sink.refuse_next = ["451 try again later"]
    automations = Automations(engine.services)
    created = automations.create(email_automation())

    run = wait_run(
        automations.run_now(created.id, {"email": "b@example.org", "name": "B", "score": 3})
    )

    assert run.status == "succeeded"
    assert run.steps[0].attempts == 2
    assert len(smtp_sink.messages) == 1


def test_permanent_smtp_refusal_fails_the_run(
    engine: Engine, wait_run: Wait, smtp_sink: SmtpSink
) -> None:
    smtp_sink.refuse_next = ["554 no thanks"]
    automations = Automations(engine.services)
    created = automations.create(email_automation())

    run = wait_run(
        automations.run_now(created.id, {"email": "c@example.org", "name": "C", "score": 1})
    )

    assert run.status == "failed"
    assert run.error is not None
    assert "554" in run.error
    assert smtp_sink.messages == []


def test_bad_recipient_after_rendering_fails_clearly(engine: Engine, wait_run: Wait) -> None:
    automations = Automations(engine.services)
    created = automations.create(email_automation())

    run = wait_run(automations.run_now(created.id, {"email": "not-an-address", "name": "D"}))

    assert run.status == "failed"
    assert run.error is not None
    assert "is not an email address" in run.error


def test_invalid_email_config_lists_every_problem(engine: Engine) -> None:
    with pytest.raises(DefinitionError) as info:
        Automations(engine.services).create(
            email_automation(to=["nobody"], subject="{{ broken", body="")
        )
    locations = {tuple(e["loc"]) for e in info.value.errors}
    assert ("steps", "0", "config", "to") in locations
    assert ("steps", "0", "config", "subject") in locations
    assert ("steps", "0", "config", "body") in locations


def test_display_names_are_encoded_but_addresses_and_message_id_stay_plain() -> None:
    row = OutboxEmail(
        idempotency_key="reward:RW-1",
        sender="Équipe Recherche <research@lab.example.org>",
        recipients=["zoe@example.org"],
        headers={"to": ["Zoë Faure <zoe@example.org>"], "reply_to": "Help <help@lab.example.org>"},
        subject="Merci, Zoë",
        body_text="Bonjour Zoë",
        body_html=None,
    )

    parsed = message_from_bytes(build_message(row).as_bytes())

    def addresses(header: str) -> list[tuple[str, str]]:
        decoded = str(make_header(decode_header(parsed[header])))
        return getaddresses([decoded])

    assert addresses("From") == [("Équipe Recherche", "research@lab.example.org")]
    assert addresses("To") == [("Zoë Faure", "zoe@example.org")]
    assert addresses("Reply-To") == [("Help", "help@lab.example.org")]
    # The raw header keeps the address outside the encoded name, where mail clients look.
    assert parsed["From"].endswith("<research@lab.example.org>")
    assert parsed["Message-ID"].endswith("@lab.example.org>")
    assert parsed["Message-ID"].count(">") == 1


def test_smtp_runs_on_its_own_threads_never_on_the_engines(
    engine: Engine, wait_run: Wait, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's threads are few (EngineConfig.executor_threads): a slow mail server must
    hold up mail only, so SMTP conversations get threads of their own."""
    import qualflow.notify.email as notify_email

    threads: list[str] = []
    real_send = notify_email.send_blocking

    def recording_send(settings: SmtpSettings, row: OutboxEmail) -> None:
        threads.append(threading.current_thread().name)
        real_send(settings, row)

    monkeypatch.setattr(notify_email, "send_blocking", recording_send)
    automations = Automations(engine.services)
    created = automations.create(email_automation())

    run = wait_run(
        automations.run_now(created.id, {"email": "ada@example.org", "name": "Ada", "score": 3})
    )

    assert run.status == "succeeded", run.error
    assert len(threads) == 1
    assert threads[0].startswith("qualflow-smtp")
    assert engine.dbos_config()["max_executor_threads"] == engine.config.executor_threads
