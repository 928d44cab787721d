"""Settings > Users: admins add people and set their roles."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import audited, record
from backend.auth.guards import role
from backend.auth.middleware import end_sessions
from backend.auth.users import UserError, create_user
from backend.deps import Actor, Db
from backend.i18n import N_, _
from backend.models import Role, User
from backend.web.posted import Posted, read_posted
from backend.web.render import redirect, render

ROLES = {
    Role.viewer.value: N_("Viewer: sees flows, contacts and runs"),
    Role.marketer.value: N_("Marketer: also builds and publishes flows"),
    Role.admin.value: N_("Admin: also manages users, keys and settings"),
}


async def _page(
    request: Request[Any, Any, Any], db: AsyncSession, form: Posted | None = None, status: int = 200
) -> Template:
    users = list(await db.scalars(select(User).order_by(User.created_at, User.id)))
    return render(
        request,
        "admin/users.html",
        {
            "nav": "settings",
            "tab": "users",
            "users": users,
            "roles": ROLES,
            "values": form.values if form else {"role": Role.viewer.value},
            "errors": form.errors if form else {},
        },
        block="users" if form else None,
        status_code=status,
    )


@get("/settings", opt=role(Role.admin))
async def settings_home(request: Request[Any, Any, Any]) -> Response[Any]:
    return redirect(request, "/settings/users")


@get("/settings/users", opt=role(Role.admin))
async def users_page(request: Request[Any, Any, Any], db: Db) -> Template:
    return await _page(request, db)


@post("/settings/users", opt=role(Role.admin) | audited("user.created"))
async def add_user(request: Request[Any, Any, Any], db: Db, actor: Actor) -> Template:
    form = await read_posted(request)
    try:
        new_role = Role(form.get("role"))
    except ValueError:
        form.error("role", _("Choose a role."))
        new_role = Role.viewer
    if form.ok:
        try:
            user = await create_user(
                db, form.get("email"), form.values.get("password", ""), new_role, form.get("name")
            )
        except UserError as exc:
            field = "password" if "password" in str(exc).lower() else "email"
            form.error(field, str(exc))
        else:
            record(db, actor, "user.created", user, {"email": user.email, "role": user.role})
            return await _page(request, db, Posted({"role": Role.viewer.value}))
    form.values.pop("password", None)
    return await _page(request, db, form, status=422)


@post("/settings/users/{user_id:int}", opt=role(Role.admin) | audited("user.changed"))
async def change_user(
    request: Request[Any, Any, Any], db: Db, actor: Actor, user_id: FromPath[int]
) -> Template:
    """Change a user's role or switch their access off and on."""
    user = await db.get(User, user_id)
    if user is None:
        raise NotFoundException(_("There is no such user."))
    form = await read_posted(request)
    changes: dict[str, Any] = {}
    if form.get("role") and form.get("role") != user.role:
        try:
            changes["role"] = Role(form.get("role")).value
        except ValueError:
            form.error("role", _("Choose a role."))
    if form.get("active") in ("0", "1") and (form.get("active") == "1") != user.is_active:
        changes["is_active"] = form.get("active") == "1"
    losing_admin = user.role == Role.admin.value and (
        changes.get("role", Role.admin.value) != Role.admin.value
        or changes.get("is_active") is False
    )
    if losing_admin and await _active_admins(db) <= 1:
        form.error("role", _("Touchflow needs at least one active admin."))
    if form.ok and changes:
        before = {key: getattr(user, key) for key in changes}
        for key, value in changes.items():
            setattr(user, key, value)
        # A new role or switched-off access holds from the next request on every device.
        end_sessions(user)
        record(
            db, actor, "user.changed", user, {"email": user.email, "from": before, "to": changes}
        )
        return await _page(request, db, Posted({"role": Role.viewer.value}))
    return await _page(
        request, db, Posted({"role": Role.viewer.value}, form.errors), 422 if form.errors else 200
    )


async def _active_admins(db: AsyncSession) -> int:
    return (
        await db.scalar(
            select(func.count()).where(User.role == Role.admin.value, User.is_active.is_(True))
        )
        or 0
    )


ROUTES = [settings_home, users_page, add_user, change_user]
