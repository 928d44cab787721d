"""CSRF protection for everything a browser sends with its session cookie.

A synchronizer token lives in the (encrypted, HttpOnly) session; every unsafe
request must echo it, as the ``X-CSRF-Token`` header (htmx: see
frontend/static/js/app.js) or the ``csrf_token`` form field (plain forms).
The public API is exempt: it authenticates with a bearer API key, never a
cookie, so a forged cross-site request has nothing to ride on.
"""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Request
from litestar.enums import RequestEncodingType, ScopeType
from litestar.exceptions import PermissionDeniedException
from litestar.middleware import MiddlewareProtocol
from litestar.types import ASGIApp, Receive, Scope, Send

from backend.auth.guards import CSRF_EXEMPT_KEY
from backend.i18n import _

SESSION_KEY = "csrf"
HEADER = "x-csrf-token"
FORM_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
EXEMPT_PREFIXES = ("/api/", "/static/", "/healthz")


class CsrfRefused(PermissionDeniedException):
    """An unsafe request without the session's CSRF token."""


def session_token(session: dict[str, Any]) -> str:
    """The session's CSRF token, created on first use."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


def rotate_token(session: dict[str, Any]) -> str:
    session.pop(SESSION_KEY, None)
    return session_token(session)


class CsrfMiddleware(MiddlewareProtocol):
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or _exempt(scope):
            await self.app(scope, receive, send)
            return
        session = scope.get("session")
        if not isinstance(session, dict):
            session = {}
            scope["session"] = session
        expected = session_token(session)
        if scope.get("method") not in SAFE_METHODS:
            supplied = await _supplied_token(Request(scope, receive))
            if not supplied or not secrets.compare_digest(supplied, expected):
                raise CsrfRefused(
                    _(
                        "This form has expired or did not come from Touchflow, so it was not "
                        "sent. Reload the page and try again."
                    )
                )
        await self.app(scope, receive, send)


def _exempt(scope: Scope) -> bool:
    if scope["path"].startswith(EXEMPT_PREFIXES):
        return True
    handler = scope.get("route_handler")
    return bool(handler is not None and handler.opt.get(CSRF_EXEMPT_KEY))


async def _supplied_token(request: Request[Any, Any, Any]) -> str | None:
    header = request.headers.get(HEADER)
    if header:
        return header
    content_type, _params = request.content_type
    if content_type in (RequestEncodingType.URL_ENCODED, RequestEncodingType.MULTI_PART):
        # Litestar caches the parsed form in the scope, so the handler can read it again.
        value = (await request.form()).get(FORM_FIELD)
        return value if isinstance(value, str) else None
    return None
