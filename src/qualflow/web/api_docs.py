"""The interactive API reference at ``/docs``, served from the vendored Swagger UI.

FastAPI's own ``/docs`` and ``/redoc`` pages load their scripts from a CDN, so on a machine
without internet access they stay blank. These pages load Swagger UI from the app itself
(``static/vendor/``, see ``VERSIONS.md`` there) instead; ReDoc is not offered. The hub and the
sandbox both use it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

SWAGGER_UI_VERSION = "5.35.0"
VENDOR_DIR = Path(__file__).parent / "static" / "vendor"
DOCS_PATH = "/docs"
_REDIRECT_PATH = f"{DOCS_PATH}/oauth2-redirect"


def install_api_docs(app: FastAPI, *, vendor_url: str, mount: bool = False) -> None:
    """Serve the API reference on ``app``, its assets from ``vendor_url`` (mounted there from
    :data:`VENDOR_DIR` when ``mount``; the hub already serves it under ``/static``)."""
    if mount:
        app.mount(vendor_url, StaticFiles(directory=VENDOR_DIR), name="api-docs-assets")
    prefix = f"{vendor_url.rstrip('/')}/swagger-ui-{SWAGGER_UI_VERSION}"
    # Built once: the page depends on nothing but the app.
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title} API",
        swagger_js_url=f"{prefix}-bundle.js",
        swagger_css_url=f"{prefix}.css",
        swagger_favicon_url=f"{prefix}-favicon-32x32.png",
        oauth2_redirect_url=_REDIRECT_PATH,
    )

    @app.get(DOCS_PATH, include_in_schema=False)
    def api_reference() -> HTMLResponse:
        return page

    @app.get(_REDIRECT_PATH, include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
