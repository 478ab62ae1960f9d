"""What an action tells the engine when it cannot simply return.

Errors are grouped by what the runner should do next, not by where they came from::

    EngineError                 base of everything the engine raises on purpose
    ├── ActionError             raised by actions while a run executes
    │   ├── RetriableError      transient: retry the step with exponential backoff
    │   ├── FatalError          permanent: fail the run with this reason
    │   ├── SkipStep            this step has nothing to do: record it as skipped, go on
    │   └── StopRun             stop the run here without failing it (status "skipped")
    ├── DefinitionError         an automation definition or step config does not validate
    ├── NotFoundError           an automation / run that does not exist
    └── ConflictError           the request contradicts the current state (e.g. replaying
                                a run that succeeded)

Errors from the Qualtrics client are mapped by their ``retriable`` attribute, so actions may let
them propagate.
"""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """Base class of the engine's own errors."""


class ActionError(EngineError):
    """Base class of the errors an action raises to steer its run."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetriableError(ActionError):
    """A transient failure: the step is retried with exponential backoff.

    ``retry_after`` (seconds), when known (e.g. from a 429's Retry-After), replaces the backoff
    delay for the next attempt.
    """

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class FatalError(ActionError):
    """A permanent failure: the run fails with this reason, later steps do not run."""


class SkipStep(ActionError):
    """The step has nothing to do; it is recorded as skipped and the run continues."""


class StopRun(ActionError):
    """Stop the run here without failing it; the run is recorded as skipped with the reason."""


class DefinitionError(EngineError):
    """An automation definition does not validate.

    ``errors`` lists each problem as ``{"loc": [...], "msg": "..."}`` so an API can return all of
    them at once.
    """

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or [{"loc": [], "msg": message}]


class NotFoundError(EngineError):
    """The automation or run does not exist."""


class ConflictError(EngineError):
    """The operation contradicts the current state of the object."""
