"""Settings > API keys (secret, shown once) and Settings > Site keys (public, per origin)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import audited, record
from backend.auth.guards import role
from backend.auth.keys import new_api_key, new_site_key, normalize_origin
from backend.deps import Actor, Db, Now
from backend.i18n import _
from backend.models import ApiKey, Role, SiteKey
from backend.personalization.verify import identify_secret
from backend.web.personalization.api import personalizer
from backend.web.posted import Posted, read_posted
from backend.web.render import render
from backend.web.urls import public_base_url

NAME_MAX = 200


def _check_name(form: Posted) -> str:
    name = form.get("name")
    if not name:
        form.error("name", _("Give the key a name that says who uses it."))
    elif len(name) > NAME_MAX:
        form.error("name", _("Keep the name under %(num)d characters.") % {"num": NAME_MAX})
    return name


async def _api_keys_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    *,
    form: Posted | None = None,
    new_token: str | None = None,
    status: int = 200,
    partial: bool = False,
) -> Template:
    keys = list(await db.scalars(select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id)))
    return render(
        request,
        "admin/api_keys.html",
        {
            "nav": "settings",
            "tab": "api-keys",
            "keys": keys,
            "roles": [r.value for r in (Role.viewer, Role.marketer, Role.admin)],
            "values": form.values if form else {"role": Role.marketer.value},
            "errors": form.errors if form else {},
            "new_token": new_token,
        },
        block="api_keys" if partial else None,
        status_code=status,
    )


@get("/settings/api-keys", opt=role(Role.admin))
async def api_keys_page(request: Request[Any, Any, Any], db: Db) -> Template:
    return await _api_keys_page(request, db)


@post("/settings/api-keys", opt=role(Role.admin) | audited("api_key.created"))
async def add_api_key(request: Request[Any, Any, Any], db: Db, actor: Actor) -> Template:
    form = await read_posted(request)
    name = _check_name(form)
    try:
        key_role = Role(form.get("role"))
    except ValueError:
        form.error("role", _("Choose a role."))
        key_role = Role.viewer
    if not form.ok:
        return await _api_keys_page(request, db, form=form, status=422, partial=True)
    made = new_api_key()
    key = ApiKey(
        name=name,
        prefix=made.prefix,
        key_hash=made.key_hash,
        role=key_role.value,
        created_by_id=actor.id,
    )
    db.add(key)
    await db.flush()
    record(db, actor, "api_key.created", key, {"name": name, "role": key.role})
    return await _api_keys_page(request, db, new_token=made.token, partial=True)


@post("/settings/api-keys/{key_id:int}/revoke", opt=role(Role.admin) | audited("api_key.revoked"))
async def revoke_api_key(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, key_id: FromPath[int]
) -> Template:
    key = await db.get(ApiKey, key_id)
    if key is None:
        raise NotFoundException(_("There is no such API key."))
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        record(db, actor, "api_key.revoked", key, {"name": key.name})
        await db.commit()
        request.app.state.api_keys.clear()
    return await _api_keys_page(request, db, partial=True)


def _parse_origins(form: Posted) -> list[str]:
    origins: list[str] = []
    for line in form.values.get("origins", "").replace(",", "\n").splitlines():
        if not line.strip():
            continue
        origin = normalize_origin(line)
        if origin is None:
            form.error(
                "origins",
                _("%(value)s is not a web origin like https://www.example.com")
                % {"value": line.strip()},
            )
        elif origin not in origins:
            origins.append(origin)
    if not origins and "origins" not in form.errors:
        form.error("origins", _("Add at least one origin the snippet may be used from."))
    return origins


async def _site_keys_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    *,
    form: Posted | None = None,
    status: int = 200,
    partial: bool = False,
) -> Template:
    keys = list(await db.scalars(select(SiteKey).order_by(SiteKey.created_at.desc(), SiteKey.id)))
    return render(
        request,
        "admin/site_keys.html",
        {
            "nav": "settings",
            "tab": "site-keys",
            "keys": keys,
            "values": form.values if form else {},
            "errors": form.errors if form else {},
            "base_url": public_base_url(request),
            # What each site's backend signs identify tokens with (docs/personalization.md).
            "identify_secrets": {
                key.id: identify_secret(request.app.state.settings.resolved_secret_key(), key.key)
                for key in keys
                if key.revoked_at is None
            },
        },
        block="site_keys" if partial else None,
        status_code=status,
    )


@get("/settings/site-keys", opt=role(Role.admin))
async def site_keys_page(request: Request[Any, Any, Any], db: Db) -> Template:
    return await _site_keys_page(request, db)


@post("/settings/site-keys", opt=role(Role.admin) | audited("site_key.created"))
async def add_site_key(request: Request[Any, Any, Any], db: Db, actor: Actor) -> Template:
    form = await read_posted(request)
    name = _check_name(form)
    origins = _parse_origins(form)
    if not form.ok:
        return await _site_keys_page(request, db, form=form, status=422, partial=True)
    key = SiteKey(name=name, key=new_site_key(), allowed_origins=origins)
    db.add(key)
    await db.flush()
    record(db, actor, "site_key.created", key, {"name": name, "origins": origins})
    return await _site_keys_page(request, db, partial=True)


@post("/settings/site-keys/{key_id:int}", opt=role(Role.admin) | audited("site_key.changed"))
async def change_site_key(
    request: Request[Any, Any, Any], db: Db, actor: Actor, key_id: FromPath[int]
) -> Template:
    key = await db.get(SiteKey, key_id)
    if key is None:
        raise NotFoundException(_("There is no such site key."))
    form = await read_posted(request)
    origins = _parse_origins(form)
    if not form.ok:
        return await _site_keys_page(request, db, form=form, status=422, partial=True)
    before = list(key.allowed_origins)
    key.allowed_origins = origins
    changes: dict[str, Any] = {"from": before, "to": origins}
    if form.get("contacts_field"):  # the checkbox is on the form (absent means unticked)
        allowed = bool(form.get("allow_browser_contacts"))
        if allowed != key.allow_browser_contacts:
            key.allow_browser_contacts = allowed
            changes["allow_browser_contacts"] = allowed
    record(db, actor, "site_key.changed", key, changes)
    personalizer(request).forget()
    return await _site_keys_page(request, db, partial=True)


@post("/settings/site-keys/{key_id:int}/revoke", opt=role(Role.admin) | audited("site_key.revoked"))
async def revoke_site_key(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, key_id: FromPath[int]
) -> Template:
    key = await db.get(SiteKey, key_id)
    if key is None:
        raise NotFoundException(_("There is no such site key."))
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        record(db, actor, "site_key.revoked", key, {"name": key.name})
    return await _site_keys_page(request, db, partial=True)


ROUTES = [
    api_keys_page,
    add_api_key,
    revoke_api_key,
    site_keys_page,
    add_site_key,
    change_site_key,
    revoke_site_key,
]
