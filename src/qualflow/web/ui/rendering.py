"""Template rendering for the UI: one Jinja2 environment, filters, and the page context.

Every page gets ``principal``, ``nav_items``, ``flashes`` and ``csrf_token`` without the route
passing them; routes pass only what is specific to the page.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.datastructures import URLPath
from starlette.responses import HTMLResponse, Response
from starlette.routing import NoMatchFound

from qualflow import __version__
from qualflow.accounts.permissions import Area, Level
from qualflow.accounts.principal import Principal
from qualflow.web.ui import flash
from qualflow.web.ui.csrf import csrf_token_for

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "NavItem", "render", "render_fragment", "templates"]

WEB_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
env = templates.env


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    icon: str
    route: str
    area: Area

    def for_principal(self, request: Request, principal: Principal) -> dict[str, Any] | None:
        try:
            href = url_path(request, self.route)
        except NoMatchFound:
            return None  # a page of an area this app was built without
        return {
            "key": self.key,
            "label": self.label,
            "icon": self.icon,
            "href": href,
            "area": self.area.label,
            "allowed": principal.can(self.area, Level.VIEW),
        }


NAV = (
    NavItem("connections", "Connections", "⇄", "ui_connections", Area.CONNECTIONS),
    NavItem("automations", "Automations", "⚙", "ui_automations", Area.AUTOMATIONS),
    NavItem("runs", "Runs", "▶", "ui_runs", Area.RUNS),
    NavItem("outbox", "Outbox", "✉", "ui_outbox", Area.RUNS),
)


class _RouteLookup:
    """Which route answers each (name, parameter names), for one router.

    ``request.url_for`` asks every route of every included router in turn until one knows
    the name: 70-160 µs a link on a page with hundreds. Whether a route knows a name depends
    only on the name and the parameters' names, so the first route that answers is kept and
    asked directly next time; its ``url_path_for`` formats the path as before.
    """

    def __init__(self, router: Any) -> None:
        self.router = router
        self.version = _routes_version(router)
        self._routes: dict[tuple[str, frozenset[str]], Any] = {}
        self._names: frozenset[str] | None = None

    def has_name(self, name: str) -> bool:
        """Whether some route (in an included router or a mount too) is called ``name``."""
        if self._names is None:
            self._names = frozenset(
                route_name
                for route in iter_routes(self.router.routes)
                if (route_name := getattr(route, "name", None)) is not None
            )
        return name in self._names

    def url_path_for(self, name: str, params: dict[str, Any]) -> URLPath:
        key = (name, frozenset(params))
        route = self._routes.get(key, _UNKNOWN)
        if route is _UNKNOWN:
            route = self._routes[key] = self._first_route_for(name, params)
        if route is None:
            raise NoMatchFound(name, params)
        path: URLPath = route.url_path_for(name, **params)
        return path

    def _first_route_for(self, name: str, params: dict[str, Any]) -> Any:
        # In the order the router asks them, as Router.url_path_for does.
        for route in _routes_asked(self.router.routes):
            try:
                route.url_path_for(name, **params)
            except NoMatchFound:
                continue
            except Exception:
                return route  # a value its convertor refuses: this route still answers
            return route
        return None


_UNKNOWN = object()


def _routes_asked(routes: Iterable[Any]) -> Iterator[Any]:
    """The routes a router asks for a path, included routers flattened into theirs."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            yield from contexts()
        else:
            yield route


def _routes_version(router: Any) -> tuple[int, int]:
    # FastAPI counts routes added to its routers; mounts are appended without counting.
    counted = getattr(router, "_get_routes_version", None)
    return len(router.routes), counted() if callable(counted) else 0


def _route_lookup(request: Request) -> _RouteLookup:
    """The app's lookup, built on first use and again when routes were added since; checked
    once a request (routes are not added while a page renders)."""
    lookup: _RouteLookup | None = request.scope.get(_LOOKUP_KEY)
    if lookup is not None:
        return lookup
    router = request.scope.get("router") or request.scope.get("app")
    state = request.app.state
    lookup = getattr(state, "ui_route_lookup", None)
    if lookup is None or lookup.router is not router or lookup.version != _routes_version(router):
        lookup = state.ui_route_lookup = _RouteLookup(router)
    request.scope[_LOOKUP_KEY] = lookup
    return lookup


_LOOKUP_KEY = "qualflow.ui_route_lookup"


def url_path(request: Request, name: str, /, **params: Any) -> str:
    """The path of the route called ``name``: what ``request.url_for(name, **params).path``
    gives (under the app's root path too), raising NoMatchFound the same way."""
    path = _route_lookup(request).url_path_for(name, params)
    return path.make_absolute_url(base_url=request.base_url).path


def _static_url(request: Request, path: str) -> str:
    # The version in the query string busts browser caches on upgrade.
    return f"{url_path(request, 'static', path=path)}?v={__version__}"


def _ago(value: datetime | None, now: datetime | None = None) -> str:
    """A short relative time: "just now", "5 min ago", "3 h ago", "2 days ago", or a date."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    seconds = (now - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        text = f"{round(seconds / 60)} min"
    elif seconds < 86400:
        text = f"{round(seconds / 3600)} h"
    elif seconds < 86400 * 14:
        days = round(seconds / 86400)
        text = f"{days} day{'s' if days != 1 else ''}"
    else:
        return value.strftime("%Y-%m-%d")
    return f"in {text}" if future else f"{text} ago"


def _datetime(value: datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"


def _tojson_pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=str, ensure_ascii=False)


env.filters["ago"] = _ago
env.filters["datetime"] = _datetime
env.filters["duration"] = _duration
env.filters["tojson_pretty"] = _tojson_pretty
env.globals["app_version"] = __version__
env.globals["VIEW"] = Level.VIEW
env.globals["MANAGE"] = Level.MANAGE


def _nav(request: Request, principal: Principal | None) -> list[dict[str, Any]]:
    if principal is None:
        return []
    items = (item.for_principal(request, principal) for item in NAV)
    return [item for item in items if item is not None]


def iter_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route, descending into included routers and mounts."""
    for route in routes:
        yield route
        inner = getattr(route, "original_router", None) or route
        children = getattr(inner, "routes", None)
        if children is not None and children is not routes:
            yield from iter_routes(children)


def _has_route(request: Request, name: str) -> bool:
    return _route_lookup(request).has_name(name)


def _context(request: Request, principal: Principal | None, **context: Any) -> dict[str, Any]:
    return {
        "request": request,
        "principal": principal,
        "nav_items": _nav(request, principal),
        "csrf_token": csrf_token_for(request),
        "static_url": lambda path: _static_url(request, path),
        "has_route": lambda name: _has_route(request, name),
        # Paths, not absolute URLs: correct behind any proxy that keeps the path.
        "url_for": lambda name, **params: url_path(request, name, **params),
        **context,
    }


def render(
    request: Request,
    template: str,
    *,
    principal: Principal | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    """Render a full page with the shared context; consumes pending flash messages."""
    pending = flash.pop(request)
    page = _context(request, principal, flashes=pending, **context)
    response = templates.TemplateResponse(
        request, template, page, status_code=status_code, headers=headers
    )
    if pending:
        flash.clear(response)
    csrf_token_for(request, response)
    return response


def render_fragment(
    request: Request,
    template: str,
    *,
    principal: Principal | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render a piece of a page (htmx swaps, live updates); leaves flash messages alone."""
    html = env.get_template(template).render(_context(request, principal, flashes=[], **context))
    return HTMLResponse(html, status_code=status_code)
