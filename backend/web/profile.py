"""The signed-in person's own settings: the language and time zone pages are shown in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import available_timezones

from babel import Locale
from litestar import Request, Response, get, post
from litestar.params import FromQuery, URLEncodedBody
from litestar.response import Template

from backend.audit import audited, record
from backend.auth.guards import current_principal, role
from backend.deps import Actor, Db
from backend.i18n import _, catalogs
from backend.models import Role, User
from backend.web.render import redirect, render

_ZONES = sorted(available_timezones() - {"localtime", "Factory"})


@dataclass
class ProfileForm:
    locale: str = ""
    time_zone: str = ""


def _languages() -> list[tuple[str, str]]:
    """Each available language named in itself (``Svenska``), as people look for their own."""
    return [
        (code, (Locale.parse(code).get_display_name(code) or code).capitalize())
        for code in catalogs.locales
    ]


def _context(user: User, error: str | None = None, saved: bool = False) -> dict[str, Any]:
    return {
        "nav": "",
        "user": user,
        "languages": _languages(),
        "zones": _ZONES,
        "error": error,
        "saved": saved,
    }


async def _me(request: Request[Any, Any, Any], db: Db) -> User:
    principal = current_principal(request)
    assert principal is not None and principal.kind == "user"  # the role guard let a user in
    user = await db.get(User, principal.id)
    assert user is not None
    return user


@get("/profile", opt=role(Role.viewer))
async def profile_page(
    request: Request[Any, Any, Any], db: Db, saved: FromQuery[bool] = False
) -> Template:
    return render(request, "profile.html", _context(await _me(request, db), saved=saved))


@post("/profile", opt=role(Role.viewer) | audited("profile.changed"))
async def save_profile(
    request: Request[Any, Any, Any], db: Db, actor: Actor, data: URLEncodedBody[ProfileForm]
) -> Response[Any] | Template:
    user = await _me(request, db)
    locale = data.locale.strip()
    zone = data.time_zone.strip()
    if locale and locale not in catalogs.locales:
        return render(
            request,
            "profile.html",
            _context(user, _("Choose one of the languages.")),
            status_code=400,
        )
    if zone and zone not in _ZONES:
        return render(
            request,
            "profile.html",
            _context(user, _("Choose a time zone from the list, like Europe/Stockholm.")),
            status_code=400,
        )
    changes = {"locale": locale or None, "time_zone": zone or None}
    user.locale, user.time_zone = changes["locale"], changes["time_zone"]
    record(db, actor, "profile.changed", user, changes)
    await db.commit()
    return redirect(request, "/profile?saved=true")


ROUTES = [profile_page, save_profile]
