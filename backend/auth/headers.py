"""Security headers on every response: what a browser may run, frame and send on.

- Admin pages (everything a signed-in person uses, and the login page) get a
  Content-Security-Policy that runs scripts from this server only (no inline
  script, no eval), may not be framed by any site (``frame-ancestors 'none'``,
  and ``X-Frame-Options: DENY`` for older browsers) and post forms only here.
  Inline ``style`` attributes stay allowed: they cannot run code.
- Hosted forms (``/f/``) keep their embed rules: any site may frame them and
  a form may send the visitor on to its thank-you address; scripts are still
  this server's only.
- Everywhere: ``Referrer-Policy: same-origin`` (admin URLs carry searches and
  ids that other sites have no business seeing), ``nosniff``, and in
  production ``Strict-Transport-Security`` so browsers never fall back to http.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import MiddlewareProtocol
from litestar.types import ASGIApp, Message, Receive, Scope, Send

HOSTED_PREFIXES = ("/f/",)
_COMMON_POLICY = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: https:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
)
ADMIN_POLICY = "; ".join([*_COMMON_POLICY, "form-action 'self'", "frame-ancestors 'none'"])
HOSTED_POLICY = "; ".join(_COMMON_POLICY)
HSTS = "max-age=31536000; includeSubDomains"


class SecurityHeadersMiddleware(MiddlewareProtocol):
    def __init__(self, app: ASGIApp, production: bool = False) -> None:
        self.app = app
        self.production = production

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        hosted = scope["path"].startswith(HOSTED_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if self.production:
                    headers.setdefault("Strict-Transport-Security", HSTS)
                if (headers.get("content-type") or "").startswith("text/html"):
                    headers.setdefault(
                        "Content-Security-Policy", HOSTED_POLICY if hosted else ADMIN_POLICY
                    )
                    if not hosted:
                        headers.setdefault("X-Frame-Options", "DENY")
            await send(message)

        await self.app(scope, receive, send_with_headers)
