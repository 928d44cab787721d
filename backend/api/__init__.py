"""The public JSON API under /api, authenticated with ``Authorization: Bearer tf_...``."""

from __future__ import annotations

from litestar import Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from backend.api import audiences, contacts, flows, ingest, me
from backend.auth.guards import public
from backend.lifecycle import api as lifecycle

API_VERSION = "v1"


def api_router() -> Router:
    return Router(
        path=f"/api/{API_VERSION}",
        route_handlers=[
            *me.ROUTES,
            *flows.ROUTES,
            *contacts.ROUTES,
            *ingest.ROUTES,
            *audiences.ROUTES,
            *lifecycle.ROUTES,
        ],
        security=[{"apiKey": []}],
        tags=["public API"],
    )


def openapi_config() -> OpenAPIConfig:
    """The schema of the public API only, served as JSON at /api/schema."""
    return OpenAPIConfig(
        title="Touchflow public API",
        version="1.0.0",
        description=(
            "Server-to-server API. Create a key under Settings > API keys and send it as "
            "`Authorization: Bearer tf_...`. Errors are "
            '`{"error": {"code", "message", "details"}}`.'
        ),
        path="/api/schema",
        render_plugins=[JsonRenderPlugin(path=["/", "/openapi.json"])],
        openapi_router=Router(
            path="/api/schema", route_handlers=[], opt=public(), include_in_schema=False
        ),
        components=Components(
            security_schemes={
                "apiKey": SecurityScheme(
                    type="http", scheme="bearer", description="An API key: tf_<prefix>_<secret>"
                )
            }
        ),
    )
