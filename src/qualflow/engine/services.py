"""What running steps need from the process they run in (database, Qualtrics clients, secrets).

DBOS workflows are module-level functions, so the running :class:`~qualflow.engine.runtime.Engine`
publishes its services here and steps look them up with :func:`current_services`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from qualflow.engine.config import EngineConfig
from qualflow.engine.run_queue import RunQueue
from qualflow.store.db import autocommit

ClientFactory = Callable[[int], Awaitable[Any]]


@dataclass
class EngineServices:
    """The process-wide collaborators of the engine."""

    config: EngineConfig
    sessionmaker: sessionmaker[Session]
    #: connection id → Qualtrics ``AsyncClient`` (one shared rate limiter per connection).
    client_factory: ClientFactory | None = None
    #: Free-form collaborators for feature packages (e.g. an SMTP sender).
    extras: dict[str, Any] = field(default_factory=dict)
    #: Plans of automation versions (immutable), see ``workflow._plan``.
    plans: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict, repr=False)
    #: (automation, version, position) → (action, spec, validated config), see ``workflow``.
    step_configs: dict[tuple[int, int, int], tuple[str, Any, Any]] = field(
        default_factory=dict, repr=False
    )
    #: Queues run workflows in batches (set while the engine runs).
    run_queue: RunQueue | None = field(default=None, repr=False)
    _fetcher: Any = field(default=None, repr=False)

    def connect(self) -> AbstractContextManager[Connection]:
        """A Core connection in a transaction (committed on success): the cheap path for the
        hot writes of running steps."""
        bind = self.sessionmaker.kw["bind"]
        return bind.begin()  # type: ignore[no-any-return]

    def autocommit(self) -> AbstractContextManager[Connection]:
        """A Core connection for writes that need no transaction around them (see
        :func:`qualflow.store.db.autocommit`)."""
        return autocommit(self.sessionmaker.kw["bind"])

    @property
    def response_fetcher(self) -> Any:
        """The process's :class:`~qualflow.engine.responses.ResponseFetcher` (created lazily)."""
        if self._fetcher is None:
            from qualflow.engine.responses import ResponseFetcher

            self._fetcher = ResponseFetcher(self)
        return self._fetcher

    async def qualtrics_client(self, connection_id: int) -> Any:
        if self.client_factory is None:
            from qualflow.engine.errors import FatalError

            raise FatalError("no Qualtrics client factory is configured in this process")
        return await self.client_factory(connection_id)


_current: EngineServices | None = None


def current_services() -> EngineServices:
    """The services of the running engine; raises if no engine is started in this process."""
    if _current is None:
        raise RuntimeError("the qualflow engine is not started in this process")
    return _current


def set_current_services(services: EngineServices | None) -> None:
    global _current
    _current = services
