"""Personalization over HTTP: the snippet file and endpoints, and the marketer's pages."""

from __future__ import annotations

from backend.web.personalization.api import personalization_lifespan, personalization_router
from backend.web.personalization.pages import ROUTES
from backend.web.personalization.snippet import snippet_router, snippet_url

__all__ = [
    "ROUTES",
    "personalization_lifespan",
    "personalization_router",
    "snippet_router",
    "snippet_url",
]
