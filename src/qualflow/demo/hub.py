"""The whole product in one process, on the embedded default, with nothing to set up.

:class:`DemoHub` starts, on loopback ports:

- the hub web app (UI + REST API + webhook edge) with the engine running in-process on SQLite in
  the data dir (``./.qualflow`` by default);
- the sandbox as the Qualtrics the demo connection points to (its state is kept in the data dir,
  so surveys and responses survive a restart);
- an SMTP sink that receives every email the automations send;

and seeds an admin (a fresh password on every start), a connection to the sandbox, and two
example automations: a completed response to the customer-satisfaction survey → fetch it →
continue unless the customer is a promoter → email the CX team; and a completed response to the
research screener → fetch it → reward the respondent with a $10 gift code (an incentive paying
from a pool of demo codes; bots and duplicates are held or skipped, as they would be for real).
Simulated respondents then take both surveys in turn at a steady rate, so runs, rewards and
emails appear in the UI.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, select

from qualflow.accounts.users import create_user, get_user_by_email, update_user
from qualflow.connections.clients import client_factory
from qualflow.connections.models import Connection
from qualflow.connections.service import (
    ConnectionChanges,
    ConnectionSpec,
    create_connection,
    update_connection,
)
from qualflow.demo.lock import DataDirLock
from qualflow.demo.servers import RunningServer, bind_socket, start_server
from qualflow.engine.automations import Automations
from qualflow.engine.config import EngineConfig
from qualflow.engine.errors import RetriableError
from qualflow.engine.models import Automation, Run
from qualflow.engine.runtime import Engine, running_engine
from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.models import GiftCodePool, Incentive, Reward
from qualflow.incentives.schemas import IncentiveSpec
from qualflow.notify.email import SmtpSettings
from qualflow.notify.models import OutboxEmail
from qualflow.sandbox import SandboxState, create_app
from qualflow.sandbox.respondents import Profile, Simulator
from qualflow.sandbox.seed import CUSTOMER_SATISFACTION, RESEARCH_SCREENER, seed_builtin
from qualflow.sandbox.smtp_sink import SmtpSink
from qualflow.sandbox.tango_state import (
    DEFAULT_ACCOUNT,
    DEFAULT_CUSTOMER,
    DEFAULT_PLATFORM,
    TangoState,
)
from qualflow.settings import Settings
from qualflow.store.base import utcnow
from qualflow.store.runtime import Store, open_store
from qualflow.web.app import create_app as create_hub_app

__all__ = [
    "DEMO_ADMIN_EMAIL",
    "DemoHub",
    "DemoStatus",
    "demo_automation",
    "demo_reward_automation",
]

log = logging.getLogger(__name__)

DEMO_ADMIN_EMAIL = "admin@qualflow.demo"
DEMO_CONNECTION = "Demo sandbox"
DEMO_AUTOMATION = "NPS follow-up: unhappy customers"
DEMO_SURVEY = CUSTOMER_SATISFACTION
DEMO_QUALTRICS_USER = "demo.admin@example.com"
CX_TEAM = "cx-team@example.org"
SANDBOX_FILE = "demo-sandbox.json"
DEMO_SCREENER = RESEARCH_SCREENER
DEMO_INCENTIVE = "Mobile banking study screener"
DEMO_REWARD_AUTOMATION = "Reward screener respondents"
DEMO_POOL = "Demo gift cards"
DEMO_TANGO = "Sandbox Tango"
DEMO_TANGO_BALANCE = "5000.00"
#: Unused demo codes topped up on every start (a respondent every few seconds uses a few
#: hundred an hour; when they run out, rewards are held with "out of codes", as for real).
DEMO_CODES = 300


@dataclass
class DemoStatus:
    responses: int
    runs: dict[str, int]
    emails_sent: int
    emails_received: int
    rewards: dict[str, int] = field(default_factory=dict)

    @property
    def runs_total(self) -> int:
        return sum(self.runs.values())


def _question_ids(state: SandboxState, survey_id: str) -> dict[str, str]:
    """The QIDs the example automation refers to, looked up instead of assumed."""
    survey = state.get_survey(survey_id)
    found: dict[str, str] = {}
    for qid in survey.ordered_question_ids():
        question = survey.questions[qid]
        if question.is_nps:
            found.setdefault("nps", qid)
        elif question.type == "MC" and not question.is_multi:
            found.setdefault("satisfaction", qid)
        elif question.type == "TE":
            found.setdefault("comment", qid)
    missing = {"nps", "satisfaction", "comment"} - found.keys()
    if missing:
        raise RuntimeError(f"the demo survey lacks questions: {', '.join(sorted(missing))}")
    return found


def demo_automation(
    connection_id: int, survey_id: str, qids: dict[str, str], *, to: str = CX_TEAM
) -> dict[str, Any]:
    """The example automation's definition (the same JSON the REST API and UI take)."""
    nps, satisfaction, comment = qids["nps"], qids["satisfaction"], qids["comment"]
    return _on_each_response(
        DEMO_AUTOMATION,
        "Every completed CSAT response is fetched; unless the customer is a promoter "
        "(NPS 9–10), the CX team gets an email to follow up.",
        connection_id,
        survey_id,
        {
            "action": "condition",
            "key": "unhappy",
            "config": {
                "expression": f"values.{nps} <= 8",
                "reason": "promoter (NPS 9–10): no follow-up needed",
            },
        },
        {
            "action": "notify.email",
            "key": "email",
            "config": {
                "to": [to],
                "subject": f"Follow up: NPS {{{{ values.{nps} }}}} from "
                "{{ values.recipientEmail or 'an anonymous customer' }}",
                "body": (
                    "A customer answered the satisfaction survey.\n\n"
                    f"NPS: {{{{ values.{nps} }}}} ({{{{ labels.{nps}_NPS_GROUP }}}})\n"
                    f"Satisfaction: {{{{ labels.{satisfaction} }}}}\n"
                    f"Comment: {{{{ values.{comment}_TEXT or '(none)' }}}}\n"
                    "Email: {{ values.recipientEmail or '(anonymous)' }}\n"
                    "Response: {{ response.responseId }}, recorded "
                    "{{ values.recordedDate }}\n\n"
                    "— qualflow run {{ run.id }}\n"
                ),
            },
        },
    )


def demo_reward_automation(
    connection_id: int, survey_id: str, incentive: str, email_qid: str
) -> dict[str, Any]:
    """The example reward automation: screener respondents get the incentive's gift code."""
    return _on_each_response(
        DEMO_REWARD_AUTOMATION,
        "Every completed screener response is fetched and its respondent rewarded with a $10 "
        "gift code, once per email; suspicious responses wait for review.",
        connection_id,
        survey_id,
        {
            "action": "incentives.send_reward",
            "key": "reward",
            "config": {"incentive": incentive, "email_field": email_qid},
        },
    )


def _on_each_response(
    name: str, description: str, connection_id: int, survey_id: str, *steps: dict[str, Any]
) -> dict[str, Any]:
    """An automation run for each completed response of a survey: it fetches the response,
    then takes ``steps``."""
    return {
        "name": name,
        "description": description,
        "connection_id": connection_id,
        "trigger": {"type": "survey_response", "survey_id": survey_id},
        "steps": [{"action": "qualtrics.get_response", "key": "response"}, *steps],
    }


def _email_question(state: SandboxState, survey_id: str) -> str:
    survey = state.get_survey(survey_id)
    qid = survey.email_question_id()
    if qid is None:
        raise RuntimeError(f"the demo survey {survey.name!r} has no email question")
    return qid


class _LoopClosingClients:
    """The connections' client factory, able to close its clients on every loop it served.

    Runs execute on the engine's own event loop; the Qualtrics clients they got (open sockets
    to the sandbox) must be closed on that loop before the engine stops it. Every client handed
    out is remembered, so one the factory's cache lost track of is closed too.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._handed: dict[asyncio.AbstractEventLoop, dict[int, Any]] = {}
        self._lock = threading.Lock()
        self._closed = False

    async def __call__(self, connection_id: int) -> Any:
        with self._lock:
            if self._closed:
                # A run that starts while the demo stops: it resumes on the next start.
                raise RetriableError("qualflow is stopping; the run resumes on the next start")
        client = await self.inner(connection_id)
        with self._lock:
            self._handed.setdefault(asyncio.get_running_loop(), {})[id(client)] = client
        return client

    async def aclose_loop(self) -> None:
        with self._lock:
            handed = self._handed.pop(asyncio.get_running_loop(), {})
        closer = getattr(self.inner, "aclose_loop", None)
        if closer is not None:
            await closer()
        for client in handed.values():
            await client.aclose()

    def close_everywhere(self, timeout: float = 5.0) -> None:
        """Close the clients of every still-running loop (from outside those loops)."""
        with self._lock:
            self._closed = True
            loops = list(self._handed)
        for loop in loops:
            if loop.is_running() and not loop.is_closed():
                future = asyncio.run_coroutine_threadsafe(self.aclose_loop(), loop)
                try:
                    future.result(timeout)
                except Exception:  # a stuck loop must not keep the demo from stopping
                    log.warning("could not close the Qualtrics clients of a loop", exc_info=True)


class PortTaken(OSError):
    """The port asked for the hub's or the sandbox's server (``server``) is in use."""

    def __init__(self, host: str, port: int, server: Literal["hub", "sandbox"]) -> None:
        super().__init__(errno.EADDRINUSE, f"{host}:{port} is already in use")
        self.port = port
        self.server = server


def _bind(host: str, port: int, server: Literal["hub", "sandbox"]) -> socket.socket:
    """A listening socket; a taken port is a :class:`PortTaken` naming the address."""
    try:
        return bind_socket(host, port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise PortTaken(host, port, server) from None


def _new_password() -> str:
    # Readable, typed by hand from the terminal: four groups of lowercase letters and digits.
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))


@dataclass
class DemoHub:
    """Start with :meth:`start`, stop with :meth:`stop` (or use it as a context manager)."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    sandbox_port: int = 0
    #: Seconds between simulated respondents (0 or less: none).
    respondent_interval: float = 3.0
    seed: int = 7
    #: Seed the example connection and automation (tests that build their own turn it off).
    examples: bool = True

    admin_email: str = DEMO_ADMIN_EMAIL
    admin_password: str = field(default="", repr=False)
    survey_id: str = ""
    qualtrics_token: str = field(default="", repr=False)
    connection_id: int = 0
    automation_id: int = 0
    screener_id: str = ""
    incentive_reference: str = ""
    reward_automation_id: int = 0
    tango_account_id: int = 0
    settings: Settings | None = None
    sandbox: SandboxState | None = None
    smtp: SmtpSink | None = None
    sandbox_server: RunningServer | None = None
    hub_server: RunningServer | None = None
    engine: Engine | None = None
    store: Store | None = None
    _own_engine: bool = False
    _clients: _LoopClosingClients | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _respondents: threading.Thread | None = None
    _responses: int = 0
    _seed_offset: int = 0
    _simulators: dict[tuple[str, bool], Simulator] = field(default_factory=dict)
    _simulators_lock: threading.Lock = field(default_factory=threading.Lock)
    _started_at: datetime | None = None
    _data_dir_lock: DataDirLock | None = None
    #: What happened, counted once everything stopped (set by :meth:`stop`).
    final_status: DemoStatus | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.hub_server.url if self.hub_server else f"http://{self.host}:{self.port}"

    def start(self) -> DemoHub:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = DataDirLock(self.data_dir)
        lock.acquire()  # before anything in the data dir is touched
        self._data_dir_lock = lock
        self._started_at = utcnow()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        # Both ports are taken first: a taken one stops the start before anything runs or is
        # seeded into the data dir, and the hub's public URL (webhook URLs use it) is known
        # before its app exists.
        hub_socket = _bind(self.host, self.port, "hub")
        try:
            sandbox_socket = _bind(self.host, self.sandbox_port, "sandbox")
        except OSError:
            hub_socket.close()
            raise
        try:
            self._start_on(hub_socket, sandbox_socket)
        except BaseException:
            # A server that started owns its socket; the others are closed here.
            if self.sandbox_server is None:
                sandbox_socket.close()
            if self.hub_server is None:
                hub_socket.close()
            raise

    def _start_on(self, hub_socket: socket.socket, sandbox_socket: socket.socket) -> None:
        self.smtp = SmtpSink(self.host, 0, directory=self.data_dir / "demo-mail").start()
        self.sandbox, qualtrics_token = self._sandbox_state()
        sandbox_app = create_app(self.sandbox)
        self.sandbox_server = start_server(sandbox_app, sock=sandbox_socket, name="sandbox")
        hub_port = hub_socket.getsockname()[1]
        if self._data_dir_lock is not None:
            self._data_dir_lock.describe(f"pid {os.getpid()}, http://{self.host}:{hub_port}")
        # What the demo announces (SQLite in its data dir, mail to its sink, plain http on
        # loopback) is fixed here: QUALFLOW_* variables exported for a real hub must not make
        # it seed a real database, or send a Secure cookie the http URL never gets back.
        self.settings = Settings(
            data_dir=self.data_dir,
            database_url="",  # the embedded default: SQLite in the data dir
            auto_migrate=True,
            public_base_url=f"http://{self.host}:{hub_port}",
            session_cookie_secure=False,
            smtp_host=self.host,
            smtp_port=self.smtp.port,
            smtp_username=None,
            smtp_password=None,
            smtp_starttls=False,
            smtp_from="qualflow-demo@example.org",
        )
        self.store = open_store(self.settings)
        self.admin_password = self._seed_admin()
        # The demo's engine (its SMTP sink, clients closed on their loops) starts first; the
        # hub app's lifespan then finds it running and uses it as it is.
        self.engine = self._engine()
        app = create_hub_app(self.settings, engine="embedded", executor_id="demo")
        self.hub_server = start_server(app, sock=hub_socket, name="hub")
        self.qualtrics_token = qualtrics_token
        if self.examples:
            self.connection_id = asyncio.run(self._seed_connection(qualtrics_token))
            self.automation_id = self._seed_automation()
            self.incentive_reference = self._seed_incentive()
            sandbox_app.state.tango = self._seed_tango_account()
            self.reward_automation_id = self._seed_reward_automation()
        if self.respondent_interval > 0:
            self._respondents = threading.Thread(
                target=self._simulate, name="qualflow-demo-respondents", daemon=True
            )
            self._respondents.start()

    def stop(self) -> None:
        self._stop.set()
        if self._respondents is not None:
            self._respondents.join(10)
        if self.hub_server is not None:
            self.hub_server.stop()
        if self.engine is not None and self._own_engine:
            self._drain()
        if self._clients is not None:
            self._clients.close_everywhere()
        if self.engine is not None and self._own_engine:
            self.engine.stop()
        if self.sandbox_server is not None:
            self.sandbox_server.stop()
        if self.sandbox is not None and self.sandbox.path is not None:
            self.sandbox.save()
        if self.smtp is not None:
            self.smtp.stop()
        if self.store is not None and self.smtp is not None:
            self.final_status = self.status()
        if self.store is not None:
            self.store.close()
        if self._data_dir_lock is not None:
            self._data_dir_lock.release()
            self._data_dir_lock = None

    def _drain(self, timeout: float = 10.0) -> None:
        """Let runs in flight finish (nothing new arrives once the servers stopped)."""
        if self.store is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.store.sessionmaker() as db:
                busy = db.scalar(
                    select(func.count())
                    .select_from(Run)
                    .where(Run.status.in_(("queued", "running")))
                )
            if not busy:
                return
            time.sleep(0.05)
        log.warning("stopping with runs in flight; they resume on the next start")

    def __enter__(self) -> DemoHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- pieces ------------------------------------------------------------------------------

    def _sandbox_state(self) -> tuple[SandboxState, str]:
        path = self.data_dir / SANDBOX_FILE
        state = SandboxState.load(path) if path.exists() else SandboxState(path=path)
        user = next((u for u in state.users.values() if u.username == DEMO_QUALTRICS_USER), None)
        if user is None or not user.api_token:
            user, token = state.create_user(
                DEMO_QUALTRICS_USER, first_name="Demo", last_name="Admin"
            )
        else:
            token = user.api_token
        survey = next((s for s in state.surveys.values() if s.name == DEMO_SURVEY), None)
        if survey is None:
            surveys = seed_builtin(state, owner_id=user.id)
            survey = next(s for s in surveys if s.name == DEMO_SURVEY)
        self.survey_id = survey.id
        if any(state.responses.values()):
            # A restart on a kept sandbox brings new people, not the same respondents again
            # (who would all be duplicates to the incentive).
            self._seed_offset = 1 + secrets.randbelow(2**31)
        screener = next((s for s in state.surveys.values() if s.name == DEMO_SCREENER), None)
        self.screener_id = screener.id if screener is not None else ""
        state.save()
        return state, token

    def _seed_admin(self) -> str:
        assert self.store is not None
        password = _new_password()
        with self.store.sessionmaker() as db:
            user = get_user_by_email(db, self.admin_email)
            if user is None:
                create_user(
                    db, email=self.admin_email, name="Demo Admin", role="admin", password=password
                )
            else:
                update_user(db, user, password=password, active=True, role="admin")
            db.commit()
        return password

    def _engine(self) -> Engine:
        existing = running_engine()
        if existing is not None:
            engine = existing
        else:
            assert self.settings is not None
            assert self.store is not None
            assert self.smtp is not None
            self._clients = _LoopClosingClients(client_factory(self.store.sessionmaker))
            engine = Engine(
                EngineConfig(
                    database_url=self.settings.database_url,
                    public_base_url=self.settings.public_base_url,
                    executor_id="demo",
                ),
                session_factory=self.store.sessionmaker,
                client_factory=self._clients,
                secret_box=self.store.secret_box,
                extras={
                    "smtp": SmtpSettings(
                        host=self.smtp.host,
                        port=self.smtp.port,
                        sender=self.settings.smtp_from,
                    )
                },
            )
            engine.start()
            self._own_engine = True
        return engine

    async def _seed_connection(self, token: str) -> int:
        assert self.store is not None
        assert self.sandbox_server is not None
        base_url = self.sandbox_server.url
        with self.store.sessionmaker() as db:
            admin = get_user_by_email(db, self.admin_email)
            assert admin is not None
            connection = db.scalar(select(Connection).where(Connection.name == DEMO_CONNECTION))
            if connection is None:
                spec = ConnectionSpec(
                    name=DEMO_CONNECTION, base_url=base_url, api_token=token, shared=True
                )
                connection, _identity = await create_connection(db, spec, owner_id=admin.id)
            elif connection.base_url != base_url or connection.api_token != token:
                # The sandbox listens on a new port each start: point the connection at it.
                from qualflow.accounts.dependencies import principal_for_user

                principal = principal_for_user(admin, via="session")
                changes = ConnectionChanges(base_url=base_url, api_token=token)
                await update_connection(db, principal, connection, changes)
            db.commit()
            return connection.id

    def _seed_automation(self) -> int:
        assert self.sandbox is not None
        definition = demo_automation(
            self.connection_id, self.survey_id, _question_ids(self.sandbox, self.survey_id)
        )
        return self._enable(definition)

    def _seed_reward_automation(self) -> int:
        assert self.sandbox is not None
        if not self.screener_id:
            return 0  # a sandbox state from before the screener existed
        definition = demo_reward_automation(
            self.connection_id,
            self.screener_id,
            self.incentive_reference,
            _email_question(self.sandbox, self.screener_id),
        )
        return self._enable(definition)

    def _enable(self, definition: dict[str, Any]) -> int:
        """Create the automation (or find it from an earlier start) and enable it."""
        assert self.engine is not None
        assert self.store is not None
        automations = Automations(self.engine.services)
        with self.store.sessionmaker() as db:
            existing = db.scalar(select(Automation.id).where(Automation.name == definition["name"]))
        if existing is None:
            automation_id = automations.create(definition, actor="demo").id
        else:
            automation_id = existing
            # Re-enabling re-creates the survey subscription for this start's URLs.
            automations.set_enabled(automation_id, False)
        automations.set_enabled(automation_id, True)
        return automation_id

    def _seed_incentive(self) -> str:
        """The demo incentive and its pool of codes, topped up to :data:`DEMO_CODES` unused."""
        assert self.store is not None
        manager = IncentiveManager(self.store.sessionmaker)
        with self.store.sessionmaker() as db:
            pool = db.scalar(select(GiftCodePool).where(GiftCodePool.name == DEMO_POOL))
            reference = db.scalar(
                select(Incentive.reference_id).where(Incentive.name == DEMO_INCENTIVE)
            )
        if pool is None:
            pool = manager.create_pool(
                DEMO_POOL, "Made-up codes for the demo; nobody can redeem them."
            )
        unused = sum(entry["unused"] for entry in manager.pool_stock(pool.id))
        if unused < DEMO_CODES:
            tag = secrets.token_hex(3).upper()
            codes = "".join(f"DEMO-{tag}-{n:04d},10,USD,\n" for n in range(DEMO_CODES - unused))
            manager.import_codes(pool.id, "code,value,currency,expiry\n" + codes)
        if reference is not None:
            return reference
        spec = IncentiveSpec(
            name=DEMO_INCENTIVE,
            description="Pays screener respondents once per email address.",
            provider="gift_codes",
            gift_code_pool_id=pool.id,
            amount=Decimal(10),
            currency="USD",
            reward_name="demo gift card",
            redemption_instructions="Demo codes cannot be redeemed anywhere.",
            approval_mode="review_suspicious",
        )
        return asyncio.run(manager.create(spec, actor="demo")).reference_id

    def _seed_tango_account(self) -> TangoState:
        """A Tango account in the hub, paid by the sandbox's Tango double, so a Tango incentive
        can be tried offline. The double is kept in the sandbox's state file: its orders and
        balance carry over to the next start. Its key is the hub account's (kept, encrypted,
        in the hub)."""
        assert self.store is not None
        assert self.sandbox_server is not None
        manager = IncentiveManager(self.store.sessionmaker)
        base_url = self.sandbox_server.url
        account = next((a for a in manager.tango_accounts() if a.name == DEMO_TANGO), None)
        if account is None:
            account = manager.create_tango_account(
                name=DEMO_TANGO, base_url=base_url, platform_name=DEFAULT_PLATFORM,
                platform_key="tk_" + secrets.token_urlsafe(24),
                customer_id=DEFAULT_CUSTOMER, account_id=DEFAULT_ACCOUNT,
            )  # fmt: skip
        elif account.base_url != base_url:  # the sandbox's port changes between starts
            account = manager.update_tango_account(account.id, base_url=base_url)
        self.tango_account_id = account.id
        assert self.sandbox is not None
        double = TangoState.kept_in(
            self.sandbox, platform_name=account.platform_name,
            platform_key=account.platform_key, balance=DEMO_TANGO_BALANCE,
        )  # fmt: skip
        double.set_platform(account.platform_name, account.platform_key)
        if DEFAULT_ACCOUNT not in double.accounts:
            double.add_account(
                DEFAULT_CUSTOMER, DEFAULT_ACCOUNT, balance=Decimal(DEMO_TANGO_BALANCE)
            )
        return double

    # -- respondents -------------------------------------------------------------------------

    def respond(
        self, count: int = 1, *, complete: bool = False, survey_id: str | None = None
    ) -> list[str]:
        """Simulate ``count`` respondents taking a demo survey (by default the satisfaction
        survey) now; their response ids. Like real people some abandon it halfway, unless
        ``complete``; a few are bots, a few answer again with an email used before."""
        assert self.sandbox is not None
        survey_id = survey_id or self.survey_id
        with self._simulators_lock:
            # One simulator per survey for the whole start: it remembers the emails it gave
            # out, which is where repeat respondents (duplicates) come from.
            simulator = self._simulators.get((survey_id, complete))
            if simulator is None:
                simulator = Simulator(
                    self.sandbox,
                    survey_id,
                    seed=self.seed + self._seed_offset + len(self._simulators),
                    profile=Profile(abandon_rate=0.0) if complete else Profile(),
                )
                self._simulators[(survey_id, complete)] = simulator
            made = simulator.run(count)
            self._responses += count
        return [response.id for response in made]

    def _simulate(self) -> None:
        # Respondents take the satisfaction survey and the screener in turn.
        surveys = [s for s in (self.survey_id, self.screener_id) if s]
        turn = 0
        while not self._stop.wait(self.respondent_interval):
            try:
                self.respond(1, survey_id=surveys[turn % len(surveys)])
            except Exception:  # keep the demo going; the log says what happened
                log.exception("simulated respondent failed")
            turn += 1

    # -- status ------------------------------------------------------------------------------

    def status(self) -> DemoStatus:
        """What happened since this start (earlier starts' runs stay in the database)."""
        since = self._started_at or utcnow()
        assert self.store is not None
        assert self.smtp is not None
        with self.store.sessionmaker() as db:

            def by_status(model: type[Run] | type[Reward]) -> dict[str, int]:
                query = select(model.status, func.count()).where(model.created_at >= since)
                return {status: count for status, count in db.execute(query.group_by(model.status))}

            runs = by_status(Run)
            sent = (
                db.scalar(
                    select(func.count())
                    .select_from(OutboxEmail)
                    .where(OutboxEmail.status == "sent")
                )
                or 0
            )
            rewards = by_status(Reward)
        return DemoStatus(
            responses=self._responses,
            runs=runs,
            emails_sent=sent,
            emails_received=self.smtp.count,
            rewards=rewards,
        )
