"""Personalization over HTTP: the snippet file and endpoints, and the marketer's pages."""

from __future__ import annotations

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from backend.auth.guards import public
from backend.templating import STATIC_DIR
from backend.web.personalization.api import personalization_lifespan, personalization_router
from backend.web.personalization.pages import ROUTES

__all__ = ["ROUTES", "personalization_lifespan", "personalization_router", "snippet_router"]

# Sites embed one unversioned URL: browsers and CDNs keep it a day and may serve a
# stale copy for a week while they revalidate, so an update reaches everyone within a day.
SNIPPET_CACHE = CacheControlHeader(public=True, max_age=86_400, stale_while_revalidate=604_800)


def snippet_router() -> Router:
    """``/static/snippet/touchflow.js`` with long-lived cache headers."""
    return create_static_files_router(
        path="/static/snippet",
        directories=[STATIC_DIR / "snippet"],
        cache_control=SNIPPET_CACHE,
        opt=public(),
        name="snippet",
    )
