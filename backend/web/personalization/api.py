"""The snippet's endpoints under ``/p/v1``: decide, events, identify.

The site key is public, so every request is checked in this order: body size
and shape, the key (cached), the ``Origin`` header against the key's allowed
origins, then rate limits per key and per visitor. The snippet posts JSON as
``text/plain`` (a "simple" request: no CORS preflight round trip); the server
refuses a wrong origin itself rather than relying on the browser. Answers carry
``Access-Control-Allow-Origin`` for the allowed origin only, and ``no-store``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any

from litestar import Litestar, Request, Response, post, route
from litestar.enums import HttpMethod
from litestar.exceptions import HTTPException
from pydantic import ValidationError
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import unaudited
from backend.auth.guards import public
from backend.contacts.normalize import InvalidValue, normalize_email
from backend.contacts.schemas import IdentifyIn
from backend.deps import Db, Now
from backend.i18n import _
from backend.models import Contact, Visitor
from backend.personalization.cache import Personalizer, Site
from backend.personalization.decide import UTM_KEYS, choose, page_context, url_utm
from backend.personalization.feed import ChangeFeed
from backend.personalization.identify import claim, create_contact, find_contact
from backend.personalization.recent import drop_here, use_feed
from backend.personalization.stitch import stitch
from backend.personalization.verify import (
    BadToken,
    identify_secret,
    read_identify_token,
    read_link_token,
)
from backend.personalization.visitors import touch
from backend.ratelimit import Limit, RateLimiter
from backend.web.personalization.schemas import DecideIn, EventIn, IdentifyVisitorIn, SnippetIn
from runtime.events import ingest

__all__ = [
    "BODY_LIMIT",
    "PublicError",
    "cors_headers",
    "decision",
    "error_response",
    "events",
    "identify",
    "parse",
    "personalization_lifespan",
    "personalizer",
    "personalizer_of_app",
    "preflight",
    "preflight_headers",
    "site_for",
    "within_limits",
]

log = logging.getLogger("touchflow.personalization")
BODY_LIMIT = 16 * 1024
PAGE_VIEW = "page.viewed"
# Events only Touchflow itself records; a browser may not claim them.
RESERVED_PREFIXES = ("form.", "email.", "sms.", "contact.", "journey.", "web.")
_ORIGIN_STATE = "p13n_origin"


class PublicError(HTTPException):
    """A refusal the snippet (and a developer in the console) can read."""


def personalizer(request: Request[Any, Any, Any]) -> Personalizer:
    """The process's caches and reader (made by ``personalization_lifespan``)."""
    return personalizer_of_app(request.app)


def personalizer_of_app(app: Litestar) -> Personalizer:
    found = app.state.personalizer
    assert isinstance(found, Personalizer)
    return found


def personalization_lifespan(app: Litestar) -> AbstractAsyncContextManager[None]:
    """Lifespan hook: ``app.state.personalizer`` for the snippet endpoints and pages."""

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        settings = app.state.settings
        engine = Personalizer.for_database(
            settings.database_url, app.state.sessions, app.state.redis
        )
        app.state.personalizer = engine
        # With Redis there may be other processes: hear of their visitor changes.
        feed = ChangeFeed(settings.redis_url) if settings.redis_url else None
        if feed is not None:
            use_feed(feed)
            feed.listen(drop_here)
        try:
            yield
        finally:
            if feed is not None:
                use_feed(None)
                await feed.close()
            await engine.close()

    return lifespan()


def cors_headers(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Vary": "Origin",
        "Cache-Control": "no-store",
    }


def error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = exc.detail if isinstance(exc, HTTPException) else _("Something went wrong.")
    headers = dict(getattr(exc, "headers", None) or {})
    origin = request.scope.get("state", {}).get(_ORIGIN_STATE)
    if origin:
        headers.update(cors_headers(origin))
    return Response(
        {"error": {"status": status, "message": message}}, status_code=status, headers=headers
    )


def parse(model: type[SnippetIn], body: bytes) -> Any:
    """The request body as ``model``; a clear 400 when it is not."""
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise PublicError(
            status_code=400,
            detail=_("The request is not valid: %(where)s: %(problem)s")
            % {"where": where, "problem": first["msg"]},
        ) from exc


async def _read(request: Request[Any, Any, Any], model: type[SnippetIn]) -> Any:
    return parse(model, await request.body())


async def site_for(engine: Personalizer, key: str, origin: str | None) -> Site:
    """The live site key ``key``, if ``origin`` may use it (else a 403 that says why)."""
    site = await engine.site(key)
    if site is None:
        raise PublicError(status_code=403, detail=_("This site key is unknown or was revoked."))
    if not site.allows(origin):
        raise PublicError(
            status_code=403,
            detail=_("Requests from %(origin)s are not allowed for this site key.")
            % {"origin": origin or _("a page without an origin")},
        )
    return site


async def within_limits(engine: Personalizer, site: Site, vid: str) -> None:
    """Per key and per visitor (across processes with Redis): a 429 with Retry-After beyond them."""
    wait = await engine.limiter.hit(f"p:k:{site.id}", engine.key_limit)
    if wait is None:
        wait = await engine.limiter.hit(f"p:v:{vid}", engine.visitor_limit)
    if wait is not None:
        raise PublicError(
            status_code=429,
            detail=_("Too many requests; try again in a moment."),
            headers={"Retry-After": str(int(wait) + 1)},
        )


async def _admit(request: Request[Any, Any, Any], payload: SnippetIn) -> Site:
    """The site key, checked against the origin, within its rate limits."""
    engine = personalizer(request)
    origin = request.headers.get("origin")
    site = await site_for(engine, payload.key, origin)
    request.scope.setdefault("state", {})[_ORIGIN_STATE] = origin
    await within_limits(engine, site, payload.vid)
    return site


def _ok(request: Request[Any, Any, Any], content: dict[str, Any]) -> Response[Any]:
    return Response(content, headers=cors_headers(request.scope["state"][_ORIGIN_STATE]))


async def decision(
    engine: Personalizer, site: Site, payload: DecideIn, now: datetime
) -> dict[str, Any]:
    """Content for the requested slots, for this visitor on this page (the decide answer).

    Served by ``backend.web.personalization.fast`` ahead of the router: the
    snippet's hottest call skips the page machinery it does not use.
    """
    state = await engine.visitor(payload.vid, now)
    # A visitor that came through another site key is a stranger here.
    mine = state.belongs_to(site.id) and not state.forgotten
    known = mine and state.contact_id is not None
    chosen = choose(
        payload.slots,
        page_context(payload.page.url, payload.utm),
        known=known,
        claimed=mine and state.claimed_contact_id is not None,
        assigned=state.assigned(payload.slots, now) if mine else {},
        rules=await engine.rules(),
    )
    answer: dict[str, Any] = {
        "slots": {
            slot: {"html": c.html, "variant": c.variant, "source": c.source}
            for slot, c in chosen.items()
        },
        "known": known,
    }
    if state.forgotten:
        answer["vid"] = new_visitor_id()  # the snippet starts over as a new visitor
    return answer


def new_visitor_id() -> str:
    """A fresh visitor id, for a browser whose old one was forgotten (its contact erased)."""
    return secrets.token_urlsafe(16)


def _utm(payload: EventIn) -> dict[str, str]:
    """The campaign: the page URL's UTM parameters, else those the snippet remembered."""
    remembered = {key: value for key, value in payload.utm.items() if key in UTM_KEYS and value}
    return {**remembered, **url_utm(payload.page.url)}


def _event_properties(payload: EventIn) -> dict[str, Any]:
    """What event triggers filter on: url, path, title, referrer, utm_*; plus custom ones."""
    page = payload.page
    properties: dict[str, Any] = {
        "url": page.url,
        "path": page_context(page.url).path,
        "title": page.title,
        "referrer": page.referrer,
        **_utm(payload),
    }
    if payload.type != PAGE_VIEW:
        properties = {**properties, **payload.properties}
    return properties


@post(
    "/events",
    opt=public(csrf_exempt=True) | unaudited("the web snippet: a visitor's page views and events"),
    request_max_body_size=BODY_LIMIT,
    status_code=202,
)
async def events(request: Request[Any, Any, Any], db: Db, clock: Now) -> Response[Any]:
    """A page view or a custom event, for the visitor (or the contact it was stitched to)."""
    payload: EventIn = await _read(request, EventIn)
    if payload.type.startswith(RESERVED_PREFIXES):
        raise PublicError(
            status_code=400,
            detail=_("Event names starting with %(prefix)s are reserved for Touchflow.")
            % {"prefix": payload.type.split(".", 1)[0] + "."},
        )
    site = await _admit(request, payload)
    now = clock.now()
    properties = _event_properties(payload)
    page, utm = payload.page.model_dump(), _utm(payload)
    visitor = await touch(db, payload.vid, site.id, now, page=page, utm=utm)
    if visitor is None:
        raise PublicError(status_code=403, detail=_("This visitor belongs to another site."))
    renewed = None
    if visitor.forgotten_at is not None:
        # Its contact was erased: nothing more is attached to the old id.
        renewed = new_visitor_id()
        visitor = await touch(db, renewed, site.id, now, page=page, utm=utm)
        assert visitor is not None
    runtime = request.app.state.runtime
    result = await ingest(
        db,
        runtime.versions,
        type=payload.type,
        now=now,
        contact_id=visitor.contact_id,
        visitor_id=visitor.id,
        properties=properties,
        dedupe_key=f"web:{site.id}:{payload.vid}:{payload.id}" if payload.id else None,
        source="web",
        doorbell=runtime.doorbell,
    )
    answer: dict[str, Any] = {"accepted": True, "duplicate": result.duplicate}
    if renewed:
        answer["vid"] = renewed
    response = _ok(request, answer)
    response.status_code = 202
    return response


@post(
    "/identify",
    opt=public(csrf_exempt=True) | unaudited("the web snippet: a visitor says who they are"),
    request_max_body_size=BODY_LIMIT,
    status_code=200,
)
async def identify(request: Request[Any, Any, Any], db: Db, clock: Now) -> Response[Any]:
    """The visitor says who it is: a claim, or verified by ``token`` or ``verify``.

    ``token``: a signed identify token from the site's backend; ``verify``: the
    ``tf_verify`` value of a link Touchflow emailed. Otherwise ``email`` or
    ``external_id`` is a claim, which shows nothing of that contact. A claim's
    answer is the same whether or not the contact exists.
    """
    payload: IdentifyVisitorIn = await _read(request, IdentifyVisitorIn)
    site = await _admit(request, payload)
    now = clock.now()
    visitor = await db.get(Visitor, payload.vid)
    if visitor is not None and (
        visitor.forgotten_at is not None or visitor.site_key_id not in (None, site.id)
    ):
        raise PublicError(
            status_code=409, detail=_("This visitor id can no longer be used; start a new one.")
        )
    if payload.token or payload.verify:
        contact_id = await _proven_contact(request, db, site, payload, now.timestamp())
        if contact_id is None:
            return _ok(request, {"identified": False, "verified": False})
        await stitch(
            db, visitor_id=payload.vid, contact_id=contact_id, now=now, site_key_id=site.id
        )
        return _ok(request, {"identified": True, "verified": True})
    data = _identify_data(payload)
    found = await find_contact(db, email=data.email, external_id=data.external_id)
    if found is None:
        if not site.allow_browser_contacts:
            # Answer like any claim: a browser cannot learn who is a contact.
            return _ok(request, {"identified": True, "verified": False})
        # The budget lives in Redis: end the read first, so no transaction (nor SQLite's
        # writer lane) waits on the network. The contact and the claim then commit
        # together; creating is an upsert, so a racing twin or a retry makes one contact.
        await db.commit()
        await _creation_allowed(request, site)
        found = (await create_contact(db, data, "web:identify"), False)
    contact_id, erased = found
    if erased:
        return _ok(request, {"identified": True, "verified": False})
    verified = await claim(
        db, visitor_id=payload.vid, contact_id=contact_id, now=now, site_key_id=site.id
    )
    return _ok(request, {"identified": True, "verified": verified})


def _identify_data(payload: IdentifyVisitorIn) -> IdentifyIn:
    try:
        data = IdentifyIn(
            email=payload.email,
            external_id=payload.external_id,
            first_name=payload.first_name,
            last_name=payload.last_name,
        )
        if data.email:
            normalize_email(data.email)
    except (InvalidValue, ValidationError) as exc:
        message = exc.message if isinstance(exc, InvalidValue) else str(exc.errors()[0]["msg"])
        raise PublicError(status_code=400, detail=message) from exc
    return data


async def _proven_contact(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    site: Site,
    payload: IdentifyVisitorIn,
    now: float,
) -> int | None:
    """The contact a signed token or an emailed link proves, created for a token if new."""
    secret = request.app.state.settings.resolved_secret_key()
    try:
        if payload.verify:
            contact_id = read_link_token(secret, payload.verify, now)
            alive = await db.scalar(
                select(Contact.id).where(Contact.id == contact_id, Contact.erased_at.is_(None))
            )
            return None if alive is None else int(alive)
        assert payload.token is not None
        named = read_identify_token(identify_secret(secret, site.key), payload.token, now)
    except BadToken as exc:
        raise PublicError(
            status_code=400,
            detail=_("The identity proof is not valid: %(why)s") % {"why": str(exc)},
        ) from exc
    found = await find_contact(db, email=named.email, external_id=named.external_id)
    if found is not None:
        return None if found[1] else found[0]
    data = IdentifyIn(email=named.email, external_id=named.external_id)
    try:
        return await create_contact(db, data, "web:identify-token")
    except InvalidValue as exc:
        raise PublicError(status_code=400, detail=exc.message) from exc


async def _creation_allowed(request: Request[Any, Any, Any], site: Site) -> None:
    """Browser-made contacts: a budget per site key and per address, shared by all processes."""
    settings = request.app.state.settings
    limiter: RateLimiter = request.app.state.rate_limiter
    address = request.client.host if request.client else "unknown"
    try:
        wait = await limiter.hit(
            f"p:new:k:{site.id}", Limit(settings.browser_contacts_per_site_key, 3600)
        )
        if wait is None:
            wait = await limiter.hit(
                f"p:new:a:{address}", Limit(settings.browser_contacts_per_address, 3600)
            )
    except RedisError as exc:
        log.warning("rate limit unavailable for browser contacts, refusing: %s", exc)
        wait = 60.0
    if wait is not None:
        raise PublicError(
            status_code=429,
            detail=_("Too many new contacts from this site or address; try again later."),
            headers={"Retry-After": str(int(wait) + 1)},
        )


@route(
    ["/events", "/identify"],
    http_method=[HttpMethod.OPTIONS],
    opt=public(csrf_exempt=True),
    status_code=204,
)
async def preflight(request: Request[Any, Any, Any]) -> Response[None]:
    """CORS preflight for clients that send ``application/json``.

    The body (and so the site key) is not part of a preflight; any origin may
    ask, and the real request is checked against the key's origins.
    """
    return Response(
        None, status_code=204, headers=preflight_headers(request.headers.get("origin", ""))
    )


def preflight_headers(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin or "*",
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": "content-type",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }
