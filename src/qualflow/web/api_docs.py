"""The interactive API reference at ``/docs``, served from the vendored Swagger UI.

FastAPI's own ``/docs`` and ``/redoc`` pages load their scripts from a CDN, so on a machine
without internet access they stay blank. These pages load Swagger UI from ``/static/vendor/``
(see ``VERSIONS.md`` there) instead; ReDoc is not offered.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import HTMLResponse

SWAGGER_UI_VERSION = "5.35.0"
DOCS_PATH = "/docs"
_REDIRECT_PATH = f"{DOCS_PATH}/oauth2-redirect"


def install_api_docs(app: FastAPI) -> None:
    """Serve the API reference on ``app`` (which must have the ``static`` mount)."""

    @app.get(DOCS_PATH, include_in_schema=False)
    def api_reference(request: Request) -> HTMLResponse:
        def static(path: str) -> str:
            return str(request.url_for("static", path=path).path)

        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=static(f"vendor/swagger-ui-{SWAGGER_UI_VERSION}-bundle.js"),
            swagger_css_url=static(f"vendor/swagger-ui-{SWAGGER_UI_VERSION}.css"),
            swagger_favicon_url=static("favicon.svg"),
            oauth2_redirect_url=_REDIRECT_PATH,
        )

    @app.get(_REDIRECT_PATH, include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
