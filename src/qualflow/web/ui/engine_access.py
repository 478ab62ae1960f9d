"""The engine's services as UI routes see them.

With an engine running in this process (the embedded default) its services are used; a
web-only process (scale-out) builds services over the same database, and run commands go
through DBOS's client to the system database (the engine's ``Control`` does that).
"""

from __future__ import annotations

from fastapi import Request

from qualflow.engine.automations import Automations
from qualflow.engine.config import EngineConfig
from qualflow.engine.runs import Runs
from qualflow.engine.runtime import running_engine
from qualflow.engine.services import EngineServices
from qualflow.web.deps import get_store

__all__ = ["automations_service", "engine_services", "runs_service"]


def engine_services(request: Request) -> EngineServices:
    engine = running_engine()
    if engine is not None:
        return engine.services
    cached: EngineServices | None = getattr(request.app.state, "ui_engine_services", None)
    if cached is None:
        store = get_store(request)
        config = EngineConfig(
            database_url=store.settings.database_url,
            public_base_url=store.settings.public_base_url,
            worker=False,
        )
        cached = EngineServices(config=config, sessionmaker=store.sessionmaker)
        request.app.state.ui_engine_services = cached
    return cached


def automations_service(request: Request) -> Automations:
    return Automations(engine_services(request))


def runs_service(request: Request) -> Runs:
    return Runs(engine_services(request))
