"""Helpers shared by the incentive tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email import message_from_string
from email.message import Message
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from qualflow.incentives.models import Reward, RewardTransition
from qualflow.sandbox import create_app
from qualflow.sandbox.tango_state import TangoState
from tests.engine.engine_support import SmtpSink

#: Fraud-detection fields of a respondent nothing is wrong with, as a platform request (a
#: Qualtrics Web Service task piping them in) carries them: without them the default rules
#: hold the reward.
CLEAN_FRAUD_FIELDS = {
    "Q_RecaptchaScore": "0.9",
    "Q_RelevantIDDuplicateScore": "0",
    "Q_RelevantIDFraudScore": "0",
}


@dataclass
class Db:
    url: str
    engine: Engine
    sessionmaker: sessionmaker[Session]

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"


@dataclass
class Tango:
    """The sandbox app serving Tango endpoints, its state, and an in-process transport."""

    app: FastAPI
    state: TangoState

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=self.app)


def sandbox_with_tango(state: TangoState | None = None) -> Tango:
    app = create_app()
    tango = state or TangoState.seeded()
    app.state.tango = tango
    return Tango(app, tango)


def reward_row(db: Db, reference: str) -> Reward:
    with db.sessionmaker() as session:
        reward = session.scalar(select(Reward).where(Reward.reference_id == reference))
        assert reward is not None, reference
        return reward


def transitions(db: Db, reference: str) -> list[tuple[str | None, str, str]]:
    with db.sessionmaker() as session:
        reward = session.scalar(select(Reward).where(Reward.reference_id == reference))
        assert reward is not None
        rows = session.scalars(
            select(RewardTransition)
            .where(RewardTransition.reward_id == reward.id)
            .order_by(RewardTransition.id)
        )
        return [(row.from_status, row.to_status, row.reason) for row in rows]


def parsed(message: dict[str, Any]) -> Message:
    return message_from_string(message["data"])


def body_text(message: dict[str, Any]) -> str:
    mail = parsed(message)
    if mail.is_multipart():
        for part in mail.walk():
            if part.get_content_type() == "text/plain":
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                return payload.decode()
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


@dataclass
class Person:
    email: str
    token: str
    password: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class QuietSmtpSink(SmtpSink):
    """The engine tests' aiosmtpd sink, stopped only once its clients have said QUIT.

    The outbox keeps SMTP connections open for reuse (closed here first), and a test may see a
    message a moment before the sender's QUIT is handled; stopping then would leave those
    sessions' tasks pending.
    """

    def stop(self) -> None:
        from qualflow.notify.email import close_pools

        close_pools()

        async def settle() -> None:
            me = asyncio.current_task()
            others = [t for t in asyncio.all_tasks() if t is not me]
            if others:
                await asyncio.wait(others, timeout=5)

        future = asyncio.run_coroutine_threadsafe(settle(), self._loop)
        future.result(10)
        super().stop()
