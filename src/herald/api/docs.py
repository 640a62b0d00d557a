"""/docs: Swagger UI from vendored assets (api/static/swagger-ui, sha256 in CHECKSUMS), so it works offline."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_URL = "/docs/assets"
SWAGGER_UI_VERSION = "5.35.0"


def mount_docs(app: FastAPI) -> None:
    """Serve the assets and the page; the app must be built with docs_url=None (FastAPI's page uses a CDN)."""
    app.mount(ASSETS_URL, StaticFiles(directory=STATIC_DIR / "swagger-ui"), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
            # Swagger UI would otherwise send the spec to validator.swagger.io for its badge.
            swagger_ui_parameters={"validatorUrl": None},
        )
