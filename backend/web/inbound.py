"""Inbound webhooks: Settings > Inbound sources, and the public ``/hooks/in/{token}`` endpoint.

A source's secret is shown once, when it is created; senders sign each body
with it (``X-Touchflow-Signature: t=<unix>,v1=<hmac>``), and a signature older
than five minutes is refused, so a captured request cannot be replayed
later. The source's mapping turns each posted JSON object into an event.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template
from pydantic import ValidationError
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import audited, record, unaudited
from backend.auth.guards import public, role
from backend.contacts.normalize import InvalidValue
from backend.contacts.schemas import TrackIn
from backend.contacts.track import EventRuntime, track_many
from backend.deps import Actor, Db, Now
from backend.errors import json_error
from backend.i18n import _
from backend.inbound import SourceMapping, to_track, verify
from backend.models import Role
from backend.models.ingestion import InboundSource
from backend.ratelimit import Limit, RateLimiter
from backend.validation import BadJson, parse_json
from backend.web.posted import Posted, read_posted
from backend.web.render import render
from backend.web.urls import public_base_url

log = logging.getLogger("touchflow.inbound")
HOOK_BODY_LIMIT = 512 * 1024
HOOK_LIMIT = Limit(count=1200, seconds=60)
MAX_ITEMS = 100
MAPPING_FIELDS = (
    "event_type",
    "email",
    "external_id",
    "properties",
    "occurred_at",
    "idempotency_key",
)


def hook_url(request: Request[Any, Any, Any], source: InboundSource) -> str:
    return f"{public_base_url(request)}/hooks/in/{source.token}"


def _mapping(form: Posted) -> SourceMapping | None:
    raw = {name: form.get(name) or None for name in MAPPING_FIELDS}
    raw["properties"] = raw["properties"] or "$"
    for name, value in raw.items():
        if value and name != "event_type" and not value.startswith("$"):
            form.error(
                name, _("Write a path into the JSON, starting with $ (like $.customer.email).")
            )
    if not raw["event_type"]:
        form.error("event_type", _("Give the event type, or the path where the payload names it."))
    if not raw["email"] and not raw["external_id"]:
        form.error(
            "email", _("Say where the payload names the customer: an email or an external id path.")
        )
    if not form.ok:
        return None
    try:
        return SourceMapping.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        form.error(str(first["loc"][0]) if first["loc"] else "event_type", first["msg"])
        return None


async def _page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    *,
    form: Posted | None = None,
    created: InboundSource | None = None,
    editing: int | None = None,
    status: int = 200,
    partial: bool = False,
) -> Template:
    sources = list(
        await db.scalars(
            select(InboundSource).order_by(InboundSource.created_at.desc(), InboundSource.id)
        )
    )
    return render(
        request,
        "inbound/sources.html",
        {
            "nav": "settings",
            "tab": "inbound",
            "sources": sources,
            "urls": {s.id: hook_url(request, s) for s in sources},
            "values": form.values if form and editing is None else {"properties": "$"},
            "errors": form.errors if form and editing is None else {},
            "editing": editing,
            "edit_values": form.values if form and editing is not None else {},
            "edit_errors": form.errors if form and editing is not None else {},
            "created": created,
            "fields": MAPPING_FIELDS,
        },
        block="sources" if partial else None,
        status_code=status,
    )


@get("/settings/inbound", opt=role(Role.admin))
async def sources_page(request: Request[Any, Any, Any], db: Db) -> Template:
    return await _page(request, db)


@post("/settings/inbound", opt=role(Role.admin) | audited("inbound_source.created"))
async def add_source(request: Request[Any, Any, Any], db: Db, actor: Actor) -> Template:
    form = await read_posted(request)
    name = form.get("name")
    if not name or len(name) > 200:
        form.error("name", _("Give the source a name (at most 200 characters), like “Shop”."))
    mapping = _mapping(form)
    if mapping is None or not form.ok:
        return await _page(request, db, form=form, status=422, partial=True)
    source = InboundSource(
        name=name,
        token=secrets.token_urlsafe(24),
        secret=secrets.token_urlsafe(32),
        mapping=mapping.model_dump(),
    )
    db.add(source)
    await db.flush()
    record(db, actor, "inbound_source.created", source, {"name": name})
    return await _page(request, db, created=source, partial=True)


@post("/settings/inbound/{source_id:int}", opt=role(Role.admin) | audited("inbound_source.changed"))
async def change_mapping(
    request: Request[Any, Any, Any], db: Db, actor: Actor, source_id: FromPath[int]
) -> Template:
    """Change where the events' parts are read from (URL and secret stay)."""
    source = await db.get(InboundSource, source_id)
    if source is None:
        raise NotFoundException(_("There is no such inbound source."))
    form = await read_posted(request)
    mapping = _mapping(form)
    if mapping is None:
        return await _page(request, db, form=form, editing=source.id, status=422, partial=True)
    before = dict(source.mapping)
    source.mapping = mapping.model_dump()
    record(db, actor, "inbound_source.changed", source, {"from": before, "to": source.mapping})
    return await _page(request, db, partial=True)


@post(
    "/settings/inbound/{source_id:int}/revoke",
    opt=role(Role.admin) | audited("inbound_source.revoked"),
)
async def revoke_source(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, source_id: FromPath[int]
) -> Template:
    source = await db.get(InboundSource, source_id)
    if source is None:
        raise NotFoundException(_("There is no such inbound source."))
    if source.revoked_at is None:
        source.revoked_at = clock.now()
        record(db, actor, "inbound_source.revoked", source, {"name": source.name})
    return await _page(request, db, partial=True)


def _refuse(status: int, code: str, message: str, details: Any = None) -> Response[Any]:
    return json_error(status, code, message, details)


async def _limited(request: Request[Any, Any, Any], source: InboundSource) -> float | None:
    limiter: RateLimiter = request.app.state.rate_limiter
    try:
        return await limiter.hit(f"hook:{source.id}", HOOK_LIMIT)
    except RedisError as exc:
        log.warning("rate limit unavailable for inbound hooks: %s", exc)
        return None


@post(
    "/hooks/in/{token:str}",
    opt=public(csrf_exempt=True)
    | unaudited("an outside system's webhook (by its secret URL); the event rows record it"),
    request_max_body_size=HOOK_BODY_LIMIT,
    status_code=202,
)
async def receive(
    request: Request[Any, Any, Any], db: Db, clock: Now, token: FromPath[str]
) -> Response[Any]:
    """Verify the sender, then store each posted object as an event (202 Accepted)."""
    # The body comes off the network before any transaction starts.
    body = await request.body()
    source = await db.scalar(
        select(InboundSource).where(
            InboundSource.token == token, InboundSource.revoked_at.is_(None)
        )
    )
    if source is None:
        return _refuse(404, "not_found", _("There is no inbound source at this address."))
    now = clock.now()
    if not verify(source.secret, request.headers, body, now.timestamp()):
        return _refuse(
            401,
            "bad_signature",
            _(
                "The signature is missing, wrong or older than five minutes. Sign "
                "“<timestamp>.<body>” with the source's secret (HMAC-SHA256) and send "
                "X-Touchflow-Signature: t=<timestamp>,v1=<hex>."
            ),
        )
    # No transaction stays open across the rate limiter's call to Redis.
    await db.commit()
    wait = await _limited(request, source)
    if wait is not None:
        response = _refuse(429, "too_many_requests", _("Too many events; slow down."))
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    try:
        payload = parse_json(body)
    except BadJson as exc:
        return _refuse(400, "bad_request", str(exc))
    items = payload if isinstance(payload, list) else [payload]
    if not items or len(items) > MAX_ITEMS:
        return _refuse(
            400,
            "bad_request",
            _("Send one JSON object, or a list of 1 to %(n)d.") % {"n": MAX_ITEMS},
        )
    mapping = SourceMapping.model_validate(source.mapping)
    runtime: EventRuntime = request.app.state.runtime
    batch: list[TrackIn | InvalidValue] = []
    for item in items:
        try:
            batch.append(to_track(mapping, item, source.id))
        except InvalidValue as exc:
            batch.append(exc)
    outcomes = await track_many(db, runtime, batch, source=f"hook:{source.name}", now=now)
    results: list[dict[str, Any]] = []
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, InvalidValue):
            results.append(
                {"index": index, "ok": False, "field": outcome.field, "message": outcome.message}
            )
        else:
            results.append(
                {
                    "index": index,
                    "ok": True,
                    "event_id": outcome.event_id,
                    "duplicate": outcome.duplicate,
                }
            )
    source.last_received_at = now
    accepted = sum(1 for r in results if r["ok"])
    if not accepted:
        return _refuse(422, "validation_failed", str(results[0]["message"]), results)
    return Response(
        {"accepted": accepted, "rejected": len(results) - accepted, "results": results},
        status_code=202,
    )


ROUTES = [sources_page, add_source, change_mapping, revoke_source, receive]
