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

from typing import Any

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


_REFERRER = (b"referrer-policy", b"same-origin")
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_HSTS = (b"strict-transport-security", HSTS.encode())
_ADMIN_CSP = (b"content-security-policy", ADMIN_POLICY.encode())
_HOSTED_CSP = (b"content-security-policy", HOSTED_POLICY.encode())
_NO_FRAMES = (b"x-frame-options", b"DENY")


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
                message["headers"] = self._completed(list(message.get("headers") or ()), hosted)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _completed(self, headers: list[tuple[bytes, bytes]], hosted: bool) -> list[Any]:
        """``headers`` with each security header the answer does not set itself.

        Raw header pairs, not ``MutableScopeHeaders``: its case-insensitive
        look-ups decoded every name again for each header, a tenth of a small
        API call's CPU.
        """
        names = {name.lower() for name, _value in headers}
        wanted = [_REFERRER, _NOSNIFF]
        if self.production:
            wanted.append(_HSTS)
        content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
        if content_type.startswith(b"text/html"):
            wanted.append(_HOSTED_CSP if hosted else _ADMIN_CSP)
            if not hosted:
                wanted.append(_NO_FRAMES)
        headers.extend(pair for pair in wanted if pair[0] not in names)
        return headers
