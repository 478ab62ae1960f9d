"""Values a step's text field can offer as you type (a ``<datalist>``), from the area that owns
them: an action's config model marks a field with ``x-suggest: <kind>`` in its JSON schema, and
the area that knows those values registers a source for the kind (incentives: their reference
ids). The editor renders one list per registered kind, so a step added later finds its list."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request

from qualflow.accounts.principal import Principal

#: (value, label) pairs a person may pick from.
Suggestions = list[tuple[str, str]]
SuggestionSource = Callable[[Request, Principal], Suggestions]

SCHEMA_KEY = "x-suggest"

log = logging.getLogger(__name__)


def register_suggestions(app: FastAPI, kind: str, source: SuggestionSource) -> None:
    sources: dict[str, SuggestionSource] = getattr(app.state, "suggestion_sources", {})
    sources[kind] = source
    app.state.suggestion_sources = sources


def suggestions_for(request: Request, principal: Principal) -> dict[str, Suggestions]:
    """Every registered kind's values for this person. A source that fails offers none: the
    editor still works, the person types the value."""
    sources: dict[str, SuggestionSource] = getattr(request.app.state, "suggestion_sources", {})
    offered: dict[str, Suggestions] = {}
    for kind, source in sources.items():
        try:
            offered[kind] = source(request, principal)
        except Exception:
            log.exception("could not list the %s to suggest", kind)
            offered[kind] = []
    return offered
