"""``Allow`` on OPTIONS answers lists every method of the path.

Litestar builds the automatic OPTIONS answer with the first handler of a path
and does not update it when another handler (``DELETE /contacts/{id}`` beside
``GET``) joins the path later, so its ``Allow`` left methods out. This
middleware writes the header from the app's full route map instead.
"""

from __future__ import annotations

import re
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import MiddlewareProtocol
from litestar.types import ASGIApp, Message, Receive, Scope, Send

_TYPED = re.compile(r"\{(\w+):[^}]+\}")


def _allowed(app: Any) -> dict[str, bytes]:
    cached: dict[str, bytes] | None = getattr(app.state, "_allow_by_path", None)
    if cached is None:
        cached = {
            # The scope's path template names parameters without their types.
            _TYPED.sub(r"{\1}", path): ", ".join(sorted(m for m in methods if m.isupper())).encode()
            for path, methods in app.route_handler_method_map.items()
        }
        app.state._allow_by_path = cached
    return cached


class AllowHeaderMiddleware(MiddlewareProtocol):
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        allow = _allowed(scope["litestar_app"]).get(scope.get("path_template", ""))

        async def send_with_allow(message: Message) -> None:
            if allow and message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                message = {**message, "headers": [*headers, (b"allow", allow)]}
            await send(message)

        await self.app(scope, receive, send_with_allow)
