"""Per-request language: the best catalog for the browser's Accept-Language."""

from __future__ import annotations

from functools import lru_cache

from litestar.enums import ScopeType
from litestar.middleware import MiddlewareProtocol
from litestar.types import ASGIApp, Receive, Scope, Send

from backend.i18n import activate_locale, catalogs

# Browsers send a handful of distinct headers, and negotiating one (Babel) costs more
# than the rest of this middleware; the catalogs are fixed for the process's life.
negotiate = lru_cache(maxsize=512)(catalogs.negotiate)


class LocaleMiddleware(MiddlewareProtocol):
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            wanted = next((v for k, v in scope["headers"] if k == b"accept-language"), None)
            locale = negotiate(wanted.decode("latin-1") if wanted is not None else None)
            scope.setdefault("state", {})["locale"] = locale
            activate_locale(locale)
        await self.app(scope, receive, send)
