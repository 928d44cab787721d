"""Personalization over HTTP: the snippet file and endpoints, and the marketer's pages."""

from __future__ import annotations

from litestar import Router
from litestar.exceptions import HTTPException

from backend.web.personalization.api import (
    error_response,
    events,
    identify,
    personalization_lifespan,
    preflight,
)
from backend.web.personalization.fast import decide
from backend.web.personalization.pages import ROUTES
from backend.web.personalization.snippet import snippet_router, snippet_url

__all__ = [
    "ROUTES",
    "personalization_lifespan",
    "personalization_router",
    "snippet_router",
    "snippet_url",
]


def personalization_router() -> Router:
    """``/p/v1``: left out of the OpenAPI schema (it is the snippet's, not a developer API)."""
    return Router(
        path="/p/v1",
        # preflight first: it replaces the automatic OPTIONS (decide answers its own)
        route_handlers=[preflight, decide, events, identify],
        exception_handlers={HTTPException: error_response},
        include_in_schema=False,
    )
