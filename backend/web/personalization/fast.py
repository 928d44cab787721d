"""``POST /p/v1/decide`` as a bare ASGI handler: the snippet's hottest call.

Every page view of every visitor asks it, so it skips what it does not use:
request objects, dependency injection, the handler signature model and
response objects (together costing more than the decision itself), and with
``serve_decide_first`` the router and the app's middleware too (session, CSRF,
auth, proxy headers, compression: none of which a decision uses). What of those
it needs it does itself: the locale of its error messages, ``nosniff``, and a
JSON 500 (logged) for a bug. It
is the same work as any snippet endpoint (``api.py``'s body parsing, site key
and origin check, rate limits, ``decision``), and it answers errors in the same
shape: ``{"error": {"status", "message"}}``, with CORS headers once the origin
was accepted.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from litestar import Litestar, asgi
from litestar.enums import ScopeType
from litestar.types import Receive, Scope, Send

from backend.auth.guards import public
from backend.i18n import _, activate_locale
from backend.web.locale import negotiate
from backend.web.personalization.api import (
    BODY_LIMIT,
    PublicError,
    cors_headers,
    decision,
    parse,
    personalizer_of_app,
    preflight_headers,
    site_for,
    within_limits,
)
from backend.web.personalization.schemas import DecideIn

__all__ = ["DECIDE_PATH", "decide", "serve_decide", "serve_decide_first"]

log = logging.getLogger("touchflow.personalization")
DECIDE_PATH = "/p/v1/decide"
# What the app's security-headers middleware adds to a JSON answer.
_SECURITY = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]


class _TooLarge(Exception):
    pass


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Any = await receive()
        if message["type"] != "http.request":
            return b""  # the client went away
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > BODY_LIMIT:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(
    send: Send, status: int, content: dict[str, Any], headers: dict[str, str]
) -> None:
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    raw += _SECURITY
    start: Any = {"type": "http.response.start", "status": status, "headers": raw}
    await send(start)
    end: Any = {"type": "http.response.body", "body": body}
    await send(end)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def serve_decide(scope: Scope, receive: Receive, send: Send) -> None:
    """The decide endpoint as a bare ASGI callable (POST; OPTIONS is the CORS preflight)."""
    if scope.get("method") == "OPTIONS":
        await _preflight(scope, send)
        return
    if scope.get("method") != "POST":
        error = {"status": 405, "message": _("This address does not accept that kind of request.")}
        await _answer(send, 405, {"error": error}, {"Allow": "POST, OPTIONS"})
        return
    app = scope["litestar_app"]
    engine = personalizer_of_app(app)
    language = _header(scope, b"accept-language")
    activate_locale(negotiate(language))
    origin = _header(scope, b"origin")
    allowed: str | None = None
    try:
        try:
            body = await _body(receive)
        except _TooLarge:
            raise PublicError(status_code=413, detail=_("The request is too large.")) from None
        payload: DecideIn = parse(DecideIn, body)
        site = await site_for(engine, payload.key, origin)
        allowed = origin
        await within_limits(engine, site, payload.vid)
        answer = await decision(engine, site, payload, app.state.clock.now())
    except PublicError as exc:
        headers = dict(exc.headers or {})
        if allowed:
            headers.update(cors_headers(allowed))
        error = {"error": {"status": exc.status_code, "message": exc.detail}}
        await _answer(send, exc.status_code, error, headers)
        return
    except Exception:
        # Ahead of the app's exception handler: log the bug, answer like it would.
        log.exception("the decide endpoint failed")
        error = {"error": {"status": 500, "message": _("Something went wrong.")}}
        await _answer(send, 500, error, cors_headers(allowed) if allowed else {})
        return
    assert allowed is not None
    await _answer(send, 200, answer, cors_headers(allowed))


async def _preflight(scope: Scope, send: Send) -> None:
    start: Any = {
        "type": "http.response.start",
        "status": 204,
        "headers": [
            (name.lower().encode(), value.encode())
            for name, value in preflight_headers(_header(scope, b"origin") or "").items()
        ],
    }
    await send(start)
    end: Any = {"type": "http.response.body", "body": b""}
    await send(end)


def serve_decide_first(app: Litestar) -> None:
    """Answer ``POST /p/v1/decide`` ahead of ``app``'s router and middleware.

    Those cost a decision a measurable share of its time and give it nothing;
    every other request goes through them as before.
    """
    inner = app.asgi_handler

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and scope["path"] == DECIDE_PATH:
            await serve_decide(scope, receive, send)
        else:
            await inner(scope, receive, send)

    app.asgi_handler = handler


@asgi("/decide", opt=public(csrf_exempt=True), include_in_schema=False, copy_scope=False)
async def decide(scope: Scope, receive: Receive, send: Send) -> None:
    """Content for the requested slots, for this visitor on this page.

    The declared route (roles and route listings see it); ``create_app`` answers
    its requests earlier, through ``serve_decide_first``.
    """
    await serve_decide(scope, receive, send)
