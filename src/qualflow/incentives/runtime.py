"""Incentives inside the web app: one service, manager and fulfiller per app, and the install hook.

``install_incentives(app)`` is the one line the app factory calls. It mounts the REST API
(``/api/v1/incentives/...``) and the UI pages, and runs the :class:`Fulfiller` in the app's
lifespan (released, retried and orphaned rewards are paid from there).

Tests and the demo may call :func:`configure_incentives` before the app starts, e.g. to route
Tango calls to the sandbox in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

# get_runtime's parameter, read at run time by FastAPI: starlette's class, which FastAPI's is.
from starlette.requests import Request

from qualflow.incentives.alerts import watch_alerts
from qualflow.incentives.manage import IncentiveManager
from qualflow.incentives.providers import ProviderContext
from qualflow.incentives.service import Fulfiller, RewardService
from qualflow.notify.email import SmtpSettings
from qualflow.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

ClientOpener = Callable[[int], AbstractAsyncContextManager[Any]]


@dataclass
class IncentiveOptions:
    """Process-level knobs; the defaults suit production."""

    tango_transport: httpx.AsyncBaseTransport | None = None
    tango_interval: float = 1.1
    smtp: SmtpSettings | None = None
    run_fulfiller: bool = True
    fulfiller_interval: float = 5.0
    #: Seconds between checks for incentives running out of gift codes (0: no check).
    alert_check_interval: float = 60.0
    #: Opens a Qualtrics client for a connection id (default: the connections package).
    client_opener: ClientOpener | None = None


@dataclass
class IncentivesRuntime:
    factory: sessionmaker[Session]
    service: RewardService
    manager: IncentiveManager
    fulfiller: Fulfiller
    open_client: ClientOpener
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def smtp_from_settings(settings: Settings) -> SmtpSettings | None:
    if not settings.smtp_host:
        return None
    return SmtpSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
        sender=settings.smtp_from,
    )


def default_client_opener(factory: sessionmaker[Session]) -> ClientOpener:
    @asynccontextmanager
    async def open_client(connection_id: int) -> AsyncIterator[Any]:
        from qualflow.connections.clients import INTERACTIVE_RATE_LIMIT_WAIT, client_for
        from qualflow.connections.models import Connection

        def load() -> Connection:
            with factory() as session:
                connection = session.get(Connection, connection_id)
                if connection is None:
                    raise LookupError(f"connection {connection_id} does not exist")
                return connection

        connection = await asyncio.to_thread(load)
        # Someone is waiting on these calls (a configuration review, a test reward).
        async with client_for(
            connection, max_rate_limit_wait=INTERACTIVE_RATE_LIMIT_WAIT
        ) as client:
            yield client

    return open_client


def build_runtime(
    factory: sessionmaker[Session], settings: Settings | None, options: IncentiveOptions
) -> IncentivesRuntime:
    providers = ProviderContext(
        sessionmaker=factory,
        tango_transport=options.tango_transport,
        tango_interval=options.tango_interval,
    )
    smtp = options.smtp or (smtp_from_settings(settings) if settings is not None else None)
    service = RewardService(factory, providers=providers, smtp=smtp)
    return IncentivesRuntime(
        factory=factory,
        service=service,
        manager=IncentiveManager(factory, providers),
        fulfiller=Fulfiller(service),
        open_client=options.client_opener or default_client_opener(factory),
    )


def configure_incentives(app: FastAPI, **options: Any) -> None:
    """Set :class:`IncentiveOptions` fields for ``app`` (call before it starts)."""
    current: IncentiveOptions = getattr(app.state, "incentive_options", None) or IncentiveOptions()
    for key, value in options.items():
        if not hasattr(current, key):
            raise TypeError(f"unknown incentive option {key!r}")
        setattr(current, key, value)
    app.state.incentive_options = current


def runtime_of(app: FastAPI) -> IncentivesRuntime:
    runtime: IncentivesRuntime | None = getattr(app.state, "incentives", None)
    if runtime is None:
        store = getattr(app.state, "store", None)
        if store is None:
            raise RuntimeError("the application's store is not open (is the lifespan running?)")
        options = getattr(app.state, "incentive_options", None) or IncentiveOptions()
        runtime = build_runtime(store.sessionmaker, store.settings, options)
        app.state.incentives = runtime
    return runtime


def get_runtime(request: Request) -> IncentivesRuntime:
    """FastAPI dependency: the app's incentives runtime."""
    return runtime_of(request.app)


@asynccontextmanager
async def incentives_lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime = runtime_of(app)
    options: IncentiveOptions = getattr(app.state, "incentive_options", None) or IncentiveOptions()
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    if options.run_fulfiller:
        task = asyncio.create_task(
            runtime.fulfiller.run(stop, interval=options.fulfiller_interval),
            name="qualflow-reward-fulfiller",
        )
    tasks = [task] if task is not None else []
    if options.alert_check_interval > 0:
        settings: Settings | None = getattr(app.state, "settings", None)
        base = settings.public_base_url.rstrip("/") if settings is not None else ""
        tasks.append(
            asyncio.create_task(
                watch_alerts(
                    runtime.factory,
                    runtime.service.smtp,
                    stop,
                    providers_url=f"{base}/incentives/providers",
                    queue_url=f"{base}/incentives/review-queue",
                    interval=options.alert_check_interval,
                ),
                name="qualflow-incentive-alerts",
            )
        )
    try:
        yield
    finally:
        stop.set()
        for running in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(running, timeout=10)
        app.state.incentives = None


def install_incentives(app: FastAPI) -> None:
    """Mount the incentives API and pages on the app and run the fulfiller with it."""
    from qualflow.incentives.api import router as api_router
    from qualflow.incentives.ui import install_pages
    from qualflow.web.app import API_PREFIX, add_lifespan

    if getattr(app.state, "incentives_installed", False):
        return
    app.state.incentives_installed = True
    app.include_router(api_router, prefix=API_PREFIX)
    install_pages(app)
    add_lifespan(app, incentives_lifespan)
