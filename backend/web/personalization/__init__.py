"""Personalization over HTTP: the snippet file and endpoints, and the marketer's pages."""

from __future__ import annotations

from collections.abc import Sequence

from litestar import Router
from litestar.exceptions import HTTPException
from litestar.types import Guard

from backend.web.personalization.api import (
    error_response,
    events,
    identify,
    personalization_lifespan,
    preflight,
)
from backend.web.personalization.fast import decide, serve_decide_first
from backend.web.personalization.pages import ROUTES
from backend.web.personalization.snippet import snippet_router, snippet_url

__all__ = [
    "ROUTES",
    "personalization_lifespan",
    "personalization_router",
    "serve_decide_first",
    "snippet_router",
    "snippet_url",
]


def personalization_router(guards: Sequence[Guard]) -> Router:
    """``/p/v1``: left out of the OpenAPI schema (it is the snippet's, not a developer API).

    ``guards`` (the app's role guard) cover every route but ``decide``, which is
    public and answers every page view: it skips the guard's per-request cost.
    """
    guarded = Router(
        path="/",
        # preflight first: it replaces the automatic OPTIONS (decide answers its own)
        route_handlers=[preflight, events, identify],
        guards=list(guards),
    )
    return Router(
        path="/p/v1",
        route_handlers=[decide, guarded],
        exception_handlers={HTTPException: error_response},
        include_in_schema=False,
    )
