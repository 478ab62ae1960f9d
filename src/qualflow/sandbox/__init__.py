"""A Qualtrics-compatible API server: the offline default for the demo and the test double.

Quick start::

    from qualflow.sandbox import SandboxState, create_app
    state = SandboxState()
    user, token = state.create_user("me@example.com")
    app = create_app(state)             # serve with uvicorn, or httpx.ASGITransport(app=app)

See :mod:`qualflow.sandbox.seed` for realistic surveys and :mod:`qualflow.sandbox.respondents`
for simulated respondents.
"""

from qualflow.sandbox.app import create_app
from qualflow.sandbox.delivery import WebhookDispatcher, sign
from qualflow.sandbox.faults import FaultInjector, FaultRule
from qualflow.sandbox.state import SandboxConfig, SandboxState

__all__ = [
    "FaultInjector",
    "FaultRule",
    "SandboxConfig",
    "SandboxState",
    "WebhookDispatcher",
    "create_app",
    "sign",
]
