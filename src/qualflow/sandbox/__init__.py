"""A Qualtrics-compatible API server: the offline default for the demo and the test double.

Quick start::

    from qualflow.sandbox import SandboxState, create_app
    state = SandboxState()
    user, token = state.create_user("me@example.com")
    app = create_app(state)             # serve with uvicorn, or httpx.ASGITransport(app=app)

See :mod:`qualflow.sandbox.seed` for realistic surveys and :mod:`qualflow.sandbox.respondents`
for simulated respondents.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qualflow.sandbox.app import create_app
    from qualflow.sandbox.delivery import WebhookDispatcher, sign
    from qualflow.sandbox.faults import FaultInjector, FaultRule
    from qualflow.sandbox.state import SandboxConfig, SandboxState

#: Where each name lives. Loaded on first use, so that a light module of the package (its
#: fault rules' bounds, for the CLI's options) can be imported without the whole server.
_HOMES = {
    "FaultInjector": "qualflow.sandbox.faults",
    "FaultRule": "qualflow.sandbox.faults",
    "SandboxConfig": "qualflow.sandbox.state",
    "SandboxState": "qualflow.sandbox.state",
    "WebhookDispatcher": "qualflow.sandbox.delivery",
    "create_app": "qualflow.sandbox.app",
    "sign": "qualflow.sandbox.delivery",
}

__all__ = [
    "FaultInjector",
    "FaultRule",
    "SandboxConfig",
    "SandboxState",
    "WebhookDispatcher",
    "create_app",
    "sign",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
