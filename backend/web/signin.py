"""Signing in and out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromQuery, URLEncodedBody
from litestar.response import Template
from sqlalchemy import func, select

from backend.audit import audited, record
from backend.auth.csrf import rotate_token
from backend.auth.guards import current_principal, public, role
from backend.auth.middleware import end_sessions, sign_in, sign_out
from backend.auth.passwords import hash_password_async, needs_rehash, verify_password_async
from backend.auth.principal import Principal
from backend.auth.throttle import LOGIN_FAILED, LOGIN_OK, LOGIN_TARGET, login_key, retry_after
from backend.deps import Db, Now
from backend.i18n import _, ngettext
from backend.models import Role, User
from backend.web.render import redirect, render, safe_next


@dataclass
class LoginForm:
    email: str = ""
    password: str = ""
    next: str = ""


def _client_ip(request: Request[Any, Any, Any]) -> str | None:
    return request.client.host if request.client else None


@get("/", opt=role(Role.viewer))
async def home(request: Request[Any, Any, Any]) -> Response[Any]:
    return redirect(request, "/flows")


@get("/login", opt=public())
async def login_page(
    request: Request[Any, Any, Any], next: FromQuery[str] = ""
) -> Response[Any] | Template:
    if current_principal(request) is not None:
        return redirect(request, safe_next(next))
    return render(request, "login.html", {"next": safe_next(next), "email": "", "error": None})


@post("/login", opt=public() | audited("auth.login", "auth.login_failed"))
async def login(
    request: Request[Any, Any, Any],
    db: Db,
    clock: Now,
    data: URLEncodedBody[LoginForm],
) -> Response[Any] | Template:
    email = data.email.strip().lower()
    ip = _client_ip(request)
    now = clock.now()
    target = (LOGIN_TARGET, login_key(email))
    context = {"next": safe_next(data.next), "email": email}

    wait = await retry_after(db, email, ip, now)
    if wait is not None:
        minutes = max(1, int(wait.total_seconds() + 59) // 60)
        message = ngettext(
            "Too many failed sign-in attempts. Try again in %(num)d minute.",
            "Too many failed sign-in attempts. Try again in %(num)d minutes.",
            minutes,
        ) % {"num": minutes}
        return render(
            request,
            "login.html",
            {**context, "error": message},
            status_code=429,
        )

    user = await db.scalar(select(User).where(func.lower(User.email) == email))
    active = user is not None and user.is_active
    ok = await verify_password_async(user.password_hash if user and active else None, data.password)
    if not ok or user is None:
        record(db, None, LOGIN_FAILED, target, {"email": email}, ip=ip, actor_label=email, at=now)
        return render(
            request,
            "login.html",
            {**context, "error": _("Wrong email or password.")},
            status_code=401,
        )

    if needs_rehash(user.password_hash):
        user.password_hash = await hash_password_async(data.password)
    user.last_login_at = now
    actor = Principal("user", user.id, user.email, user.name, Role(user.role))
    record(db, actor, LOGIN_OK, target, {"email": email}, ip=ip, at=now)
    sign_in(request.session, user, now)
    rotate_token(request.session)
    return redirect(request, safe_next(data.next))


@post("/logout", opt=role(Role.viewer) | audited("auth.logout"))
async def logout(request: Request[Any, Any, Any], db: Db) -> Response[Any]:
    """Sign out here and everywhere: copies of this session cookie stop working too."""
    principal = current_principal(request)
    user = await db.get(User, principal.id) if principal and principal.kind == "user" else None
    if user is not None:
        end_sessions(user)
    if principal is not None:
        record(db, principal, "auth.logout", user)
    sign_out(request.session)
    return redirect(request, "/login")


ROUTES = [home, login_page, login, logout]
