"""``POST /api/v1/track`` answered ahead of the router and middleware when all goes well.

A single track call is the API's hottest route, and most of its CPU went to
the generic web stack (seven middleware layers, routing, the guard, the
signature model, dependency resolution, response objects), not to the event.
``serve_track_first`` answers the ordinary call itself, doing what those
layers do for it:

- the caller's language, as ``LocaleMiddleware`` picks it, and the key's
  time zone, as ``AuthMiddleware`` sets it;
- the key check (``backend.auth.middleware``, the same cache and the same
  read) and the role guard's rule (marketer or higher);
- the body limit of the route, ``parse_json`` (UTF-8, nesting, NUL) and
  ``TrackIn`` as the route's signature model validates it;
- the answer as the route writes it, with the headers
  ``SecurityHeadersMiddleware`` adds (too small to be compressed).

Everything else goes through the app as before, so its answer is the app's own
by construction: another method, no or a refused key, a role too low, a body
over the limit, malformed JSON or an invalid shape are handed to the app with
the body read so far replayed. A call that was written but answers an error
(an ``InvalidValue`` for the item, or an exception from the shared
transaction) is handed over too, with its outcome in the scope: the route
raises it instead of writing again, and the app's exception handlers shape
the answer (language, compression, logging) as they always did.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import Message, Receive, Scope, Send
from pydantic import ValidationError

from backend.api import API_VERSION
from backend.api.ingest import SINGLE_BODY_LIMIT, TRACK_OUTCOME, intake_of, source_of
from backend.auth.headers import HSTS
from backend.auth.middleware import CHECKED_PRINCIPAL, api_key_principal, use_preferences
from backend.contacts.normalize import InvalidValue
from backend.contacts.schemas import TrackIn
from backend.i18n import activate_locale
from backend.models import Role
from backend.validation import BadJson, parse_json
from backend.web.locale import negotiate

__all__ = ["TRACK_OUTCOME", "TRACK_PATH", "serve_track_first"]

TRACK_PATH = f"/api/{API_VERSION}/track"
_NEEDED = Role.marketer
_JSON = (b"content-type", b"application/json")
_SECURITY = [(b"referrer-policy", b"same-origin"), (b"x-content-type-options", b"nosniff")]
_HSTS = (b"strict-transport-security", HSTS.encode())

ASGIHandler = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Replay:
    """``receive`` for the app after the fast path read some messages: those first, then more."""

    def __init__(self, seen: list[Message], receive: Receive) -> None:
        self._seen = seen
        self._receive = receive

    async def __call__(self) -> Any:
        if self._seen:
            return self._seen.pop(0)
        return await self._receive()


async def _body(receive: Receive, seen: list[Message]) -> bytes | None:
    """The whole body, or None when it is over the limit or the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Any = await receive()
        seen.append(message)
        if message["type"] != "http.request":
            return None
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > SINGLE_BODY_LIMIT:
            return None
        if not message.get("more_body", False):
            return b"".join(chunks)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _track_in(body: bytes) -> TrackIn | None:
    """The body as the route would take it, or None when the route would refuse it."""
    try:
        value = parse_json(body or b"null")
    except BadJson:
        return None
    if not isinstance(value, dict):
        return None
    try:
        return TrackIn.model_validate(value)
    except ValidationError:
        return None


async def serve_track(
    app: Litestar, inner: ASGIHandler, scope: Scope, receive: Receive, send: Send
) -> None:
    """One ``POST /api/v1/track``: answered here when it succeeds, else by ``inner`` (the app)."""
    language = next((v for k, v in scope["headers"] if k == b"accept-language"), None)
    locale = negotiate(language.decode("latin-1") if language is not None else None)
    scope.setdefault("state", {})["locale"] = locale
    activate_locale(locale)
    try:
        principal = await api_key_principal(scope)
    except Exception:  # the key could not be read: the app checks again and answers the error
        await inner(scope, receive, send)
        return
    use_preferences(scope, principal)
    # The app's auth middleware takes the caller from here instead of checking the key again.
    scope[CHECKED_PRINCIPAL] = principal  # type: ignore[literal-required]
    declared = _declared_length(scope)
    if principal is None or not principal.allows(_NEEDED) or (declared or 0) > SINGLE_BODY_LIMIT:
        await inner(scope, receive, send)
        return
    seen: list[Message] = []
    body = await _body(receive, seen)
    data = _track_in(body) if body is not None else None
    if data is None:
        await inner(scope, _Replay(seen, receive), send)
        return
    try:
        outcome: Any = await intake_of(app.state).track(data, source=source_of(principal))
    except Exception as exc:  # the app's exception handlers answer it
        outcome = exc
    if not isinstance(outcome, (InvalidValue, Exception)):
        answer = {
            "event_id": outcome.event_id,
            "duplicate": outcome.duplicate,
            "enrolled": len(outcome.enrolled),
            "woken": len(outcome.woken),
        }
        await _answer(app, send, msgspec.json.encode(answer))
        return
    scope[TRACK_OUTCOME] = outcome  # type: ignore[literal-required]
    await inner(scope, _Replay(seen, receive), send)


async def _answer(app: Litestar, send: Send, body: bytes) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode()), *_SECURITY]
    if app.state.settings.environment == "production":
        headers.append(_HSTS)
    start: Any = {"type": "http.response.start", "status": 202, "headers": headers}
    await send(start)
    end: Any = {"type": "http.response.body", "body": body}
    await send(end)


def serve_track_first(app: Litestar) -> None:
    """Answer ``POST /api/v1/track`` ahead of ``app``'s router and middleware (see the module)."""
    inner = app.asgi_handler

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == ScopeType.HTTP
            and scope["path"] == TRACK_PATH
            and scope.get("method") == "POST"
        ):
            await serve_track(app, inner, scope, receive, send)
        else:
            await inner(scope, receive, send)

    app.asgi_handler = handler
