"""Swagger UI for the HTTP API at ``/docs``, served from files on this machine.

FastAPI's own ``/docs`` page loads Swagger UI's script and style sheet from a CDN, which a
server on a laptop or an air-gapped host cannot reach (and which would tell a third party when
someone opens the page). The assets come instead from the ``fastapi-offline`` package, which
ships Swagger UI 5's ``swagger-ui-bundle.js`` and ``swagger-ui.css`` (OpenAPI 3.1, the version
FastAPI writes, needs Swagger UI 5); we use only its files, not its app factory, since the app
is our own :class:`FastAPI` subclass.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_URL", "DOCS_URL", "add_docs"]

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"


def _assets() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def add_docs(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """Serve Swagger UI at :data:`DOCS_URL`, with its assets under :data:`ASSETS_URL`."""
    app.mount(ASSETS_URL, StaticFiles(directory=_assets()), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} — API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            # validatorUrl: Swagger UI's default sends the spec to validator.swagger.io.
            swagger_ui_parameters={
                "persistAuthorization": False,
                "displayOperationId": True,
                "validatorUrl": None,
            },
        )
