"""``POST /p/v1/decide`` as a bare ASGI handler: the snippet's hottest call.

Every page view of every visitor asks it, so it skips what it does not use:
request objects, dependency injection, the handler signature model and
response objects (together costing more than the decision itself). It
is the same work as any snippet endpoint (``api.py``'s body parsing, site key
and origin check, rate limits, ``decision``), and it answers errors in the same
shape: ``{"error": {"status", "message"}}``, with CORS headers once the origin
was accepted.
"""

from __future__ import annotations

import json
from typing import Any

from litestar import asgi
from litestar.types import Receive, Scope, Send

from backend.auth.guards import public
from backend.i18n import _
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

__all__ = ["decide", "serve_decide"]


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


@asgi("/decide", opt=public(csrf_exempt=True), include_in_schema=False, copy_scope=False)
async def decide(scope: Scope, receive: Receive, send: Send) -> None:
    """Content for the requested slots, for this visitor on this page."""
    await serve_decide(scope, receive, send)
