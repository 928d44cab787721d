"""Role checks on every route, failing closed.

Every route handler declares who may call it in its ``opt``: ``public()`` or
``role(Role.viewer | Role.marketer | Role.admin)``. The app-wide guard refuses
any handler that declares neither, and ``undeclared_routes`` lets a test (and
``create_app``) prove that nothing was forgotten.

The rule for state-changing routes (written down once, here): a route that
changes shared state (flows, contacts, forms, messages, settings) needs
marketer or higher; user accounts, API keys, site keys, retries and
migrations need admin. A viewer changes nothing but what is assigned to them:
a route that lets a lower role act on its *own* record declares the lowest role
and checks ownership with ``may_act_on`` (a viewer completes only their own
task; a marketer completes anyone's). docs/security.md lists every actor.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.routes import HTTPRoute

from backend.auth.principal import Principal
from backend.i18n import _
from backend.models import Role

ROLE_KEY = "role"
PUBLIC_KEY = "public"
CSRF_EXEMPT_KEY = "csrf_exempt"


def role(needed: Role) -> dict[str, Any]:
    """Route ``opt`` for handlers that need at least ``needed``."""
    return {ROLE_KEY: needed}


def public(*, csrf_exempt: bool = False) -> dict[str, Any]:
    """Route ``opt`` for handlers anyone may call (login page, health check, static files).

    ``csrf_exempt`` is for endpoints called cross-site without cookies (the web
    snippet with its site key); never use it on a handler that reads the session.
    """
    return {PUBLIC_KEY: True, CSRF_EXEMPT_KEY: csrf_exempt}


class RoleRefused(PermissionDeniedException):
    """A signed-in caller whose role is too low for the route."""


def may_act_on(principal: Principal, owner_id: int | None, needed: Role = Role.marketer) -> bool:
    """Whether ``principal`` may change a record owned by ``owner_id``: its owner, or ``needed``."""
    if principal.allows(needed):
        return True
    return principal.kind == "user" and owner_id is not None and principal.id == owner_id


def current_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    user = connection.scope.get("user")
    return user if isinstance(user, Principal) else None


def _is_public(handler: BaseRouteHandler) -> bool:
    # Litestar answers OPTIONS itself (the Allow header); it reads and changes nothing.
    return bool(handler.opt.get(PUBLIC_KEY)) or set(getattr(handler, "http_methods", ())) == {
        "OPTIONS"
    }


async def role_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The app-wide guard: public routes pass, the rest need a caller with the declared role.

    ``async`` so that Litestar runs it on the event loop: a sync guard costs a thread hop
    on every request.
    """
    if _is_public(handler):
        return
    needed = handler.opt.get(ROLE_KEY)
    if not isinstance(needed, Role):
        raise PermissionDeniedException(_("This page is not available."))
    principal = current_principal(connection)
    if principal is None:
        if connection.scope["path"].startswith("/api/"):
            raise NotAuthorizedException(
                _("Send a valid API key in the header Authorization: Bearer tf_...")
            )
        raise NotAuthorizedException(_("Please sign in to continue."))
    if not principal.allows(needed):
        raise RoleRefused(
            _("Your role (%(role)s) does not allow this; it needs %(needed)s or higher.")
            % {"role": principal.role.value, "needed": needed.value}
        )


def undeclared_routes(app: Litestar) -> list[str]:
    """``"METHOD /path"`` for every handler that declares neither a role nor public."""
    missing = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not _is_public(handler) and not isinstance(handler.opt.get(ROLE_KEY), Role):
                methods = ",".join(sorted(getattr(handler, "http_methods", ()) or ("WS",)))
                missing.append(f"{methods} {route.path}")
    return missing


def unguarded_routes(app: Litestar) -> list[str]:
    """``"METHOD /path"`` for every non-public handler the role guard does not cover."""
    missing = []
    for route in app.routes:
        handlers = route.route_handlers if isinstance(route, HTTPRoute) else [route.route_handler]
        for handler in handlers:
            if not _is_public(handler) and role_guard not in handler.resolve_guards():
                methods = ",".join(sorted(getattr(handler, "http_methods", ()) or ("ASGI",)))
                missing.append(f"{methods} {route.path}")
    return missing
