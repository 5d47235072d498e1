"""The /docs UI (Swagger UI, rendered by quart-schema) with its JS and CSS served by the app itself:
no CDN, so the page works offline. The assets come from the `swagger-ui-bundle` package
(requirements.txt); quart-schema's redoc and scalar pages, which only load from a CDN, are off."""

from __future__ import annotations

from quart import Quart, Response, abort, send_from_directory
from quart_schema import hide
from swagger_ui_bundle import swagger_ui_path

ASSETS_PREFIX = "/docs/assets"
ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css"})

# QuartSchema(...) arguments: only the Swagger UI at /docs.
SCHEMA_UI_OPTIONS = {"swagger_ui_path": "/docs", "redoc_ui_path": None, "scalar_ui_path": None}


def configure_docs_assets(app: Quart) -> None:
    """Point quart-schema's Swagger UI at the local assets; call before QuartSchema(app, ...)."""
    app.config["QUART_SCHEMA_SWAGGER_JS_URL"] = f"{ASSETS_PREFIX}/swagger-ui-bundle.js"
    app.config["QUART_SCHEMA_SWAGGER_CSS_URL"] = f"{ASSETS_PREFIX}/swagger-ui.css"

    @hide
    async def docs_asset(filename: str) -> Response:
        if filename not in ASSETS:
            abort(404)  # the one error mapping (web/errors.py) answers it
        response = await send_from_directory(str(swagger_ui_path), filename)
        response.cache_control.public = True
        response.cache_control.max_age = 86_400
        return response

    app.add_url_rule(f"{ASSETS_PREFIX}/<filename>", "docs_asset", docs_asset)
