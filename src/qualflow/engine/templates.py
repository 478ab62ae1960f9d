"""Jinja2 templates for action configs (email subject/body, HTTP bodies), sandboxed.

Templates see the run namespace (``values``, ``labels``, ``embedded``, ``response``, ``trigger``,
``steps``, ``run``). Missing fields render as empty text rather than failing a run, and the
sandbox refuses access to Python internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from qualflow.engine.errors import FatalError

_env = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
_html_env = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=True)


def check_template(source: str) -> str:
    """Raise ``ValueError`` with the line and reason if ``source`` is not a valid template."""
    try:
        # Compiled, not only parsed: an unknown filter or test is found at compile time.
        _env.compile(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template error on line {exc.lineno}: {exc.message}") from None
    return source


@lru_cache(maxsize=512)
def _compiled(source: str, html: bool) -> Template:
    return (_html_env if html else _env).from_string(source)


def render(source: str, namespace: Mapping[str, Any], *, html: bool = False) -> str:
    """Render a template; a failure at run time fails the step with the reason."""
    try:
        return _compiled(source, html).render(**namespace)
    except (SecurityError, TemplateError) as exc:
        raise FatalError(f"template error: {exc}") from None


def render_structure(value: Any, namespace: Mapping[str, Any]) -> Any:
    """Render every string inside a JSON-like structure."""
    if isinstance(value, str):
        return render(value, namespace) if ("{{" in value or "{%" in value) else value
    if isinstance(value, list):
        return [render_structure(v, namespace) for v in value]
    if isinstance(value, dict):
        return {k: render_structure(v, namespace) for k, v in value.items()}
    return value


def check_structure(value: Any) -> Any:
    """Check every template string inside a JSON-like structure."""
    if isinstance(value, str):
        check_template(value)
    elif isinstance(value, list):
        for v in value:
            check_structure(v)
    elif isinstance(value, dict):
        for v in value.values():
            check_structure(v)
    return value
