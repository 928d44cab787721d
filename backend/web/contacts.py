"""Contacts pages: the filtered list and its CSV export, a contact's page, edit, GDPR.

The list filters by a search text and a rule (the filter builder's one
condition, and/or a rule typed as JSON), compiled to SQL by the rule compiler.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, FromQuery
from litestar.response import Stream, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.audit import audited, record
from backend.auth.guards import role
from backend.auth.principal import Principal
from backend.contacts.filtering import (
    combine,
    contacts_query,
    count_contacts,
    iterate_contacts,
    parse_rule_text,
    simple_rule,
)
from backend.contacts.identify import AttributeSchema
from backend.contacts.imports import typed_cell
from backend.contacts.normalize import InvalidValue, normalize_phone
from backend.contacts.privacy import erase_contact, export_contact
from backend.csvfile import CsvWriter
from backend.deps import Actor, Db, Now, Paging
from backend.i18n import _
from backend.models import (
    Contact,
    ContactConsent,
    Event,
    Flow,
    Journey,
    OutboxMessage,
    Role,
    User,
)
from backend.models.ingestion import AttributeDefinition
from backend.web.posted import Posted, read_posted
from backend.web.render import redirect, render
from runtime.rules.ast import FIELD_TYPES, OPS_BY_TYPE, Rule

TIMELINE_LIMIT = 100
CSV_FIELDS = ("id", "external_id", "email", "phone", "first_name", "last_name", "lifecycle_stage")
_ATTR_ROW = re.compile(r"^attr-(\d+)-(key|value)$")


async def _filter(
    db: AsyncSession, text_rule: str, key: str, op: str, value: str
) -> tuple[Rule | None, dict[str, str]]:
    """The rule the filter controls describe, and an error per control that is wrong."""
    errors: dict[str, str] = {}
    built = typed = None
    try:
        built = await simple_rule(db, key, op, value)
    except InvalidValue as exc:
        errors["filter"] = exc.message
    try:
        typed = parse_rule_text(text_rule)
    except InvalidValue as exc:
        errors["rule"] = exc.message
    return combine(built, typed), errors


async def filter_choices(db: AsyncSession) -> dict[str, Any]:
    """The filter builder's choices: every field and declared attribute, and the operators."""
    rows = await db.execute(select(AttributeDefinition.key, AttributeDefinition.type))
    attributes = {key: kind for key, kind in rows}
    keys = {**{k: str(v) for k, v in FIELD_TYPES.items()}, **attributes}
    ops = sorted({op for kind in keys.values() for op in OPS_BY_TYPE.get(kind, ())})
    return {"filter_keys": keys, "filter_ops": ops}


@get("/contacts", opt=role(Role.viewer))
async def contacts_page(
    request: Request[Any, Any, Any],
    db: Db,
    paging: Paging,
    clock: Now,
    actor: Actor,
    q: FromQuery[str] = "",
    rule: FromQuery[str] = "",
    key: FromQuery[str] = "",
    op: FromQuery[str] = "equals",
    value: FromQuery[str] = "",
) -> Template:
    parsed, errors = await _filter(db, rule, key, op, value)
    contacts: list[Contact] = []
    total = 0
    if not errors:
        stmt = contacts_query(db, q, parsed, clock.now())
        total = await count_contacts(db, stmt)
        contacts = list(
            await db.scalars(
                stmt.order_by(Contact.created_at.desc(), Contact.id.desc())
                .limit(paging.size)
                .offset(paging.offset)
            )
        )
    owner_ids = {c.owner_id for c in contacts if c.owner_id is not None}
    owners: dict[int, str] = {}
    if owner_ids:
        rows = await db.execute(select(User.id, User.name).where(User.id.in_(owner_ids)))
        owners = {row.id: row.name for row in rows}
    query = {"q": q, "rule": rule, "key": key, "op": op, "value": value}
    return render(
        request,
        "contacts/list.html",
        {
            "nav": "contacts",
            "contacts": contacts,
            "owners": owners,
            "total": total,
            "q": q,
            "query": query,
            "errors": errors,
            "filtered": parsed is not None or bool(q),
            "paging": paging,
            "pages": paging.count(total),
            "can_export": actor.allows(Role.marketer),
            **await filter_choices(db),
        },
        block="results",
        status_code=422 if errors else 200,
    )


async def _csv_rows(
    sessions: async_sessionmaker[AsyncSession],
    q: str,
    rule: Rule | None,
    now: datetime,
    attributes: list[str],
) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = CsvWriter(buffer)
    writer.writerow([*CSV_FIELDS, "tags", "created_at", *attributes])
    async for batch in iterate_contacts(sessions, q, rule, now):
        for c in batch:
            writer.writerow(
                [
                    *(getattr(c, name) for name in CSV_FIELDS),
                    ";".join(c.tags or []),
                    c.created_at.isoformat(),
                    *((c.attributes or {}).get(a) for a in attributes),
                ]
            )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


@get("/contacts/export.csv", opt=role(Role.marketer))
async def export_csv(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    clock: Now,
    q: FromQuery[str] = "",
    rule: FromQuery[str] = "",
    key: FromQuery[str] = "",
    op: FromQuery[str] = "equals",
    value: FromQuery[str] = "",
) -> Stream:
    """The list as filtered, streamed in batches so a large export never sits in memory."""
    parsed, errors = await _filter(db, rule, key, op, value)
    if errors:
        raise ValidationException(detail=next(iter(errors.values())))
    attributes = list(
        await db.scalars(select(AttributeDefinition.key).order_by(AttributeDefinition.key))
    )
    record(
        db,
        actor,
        "contacts.exported",
        None,
        {"q": q, "rule": rule, "key": key, "op": op, "value": value},
    )
    return Stream(
        _csv_rows(request.app.state.sessions, q, parsed, clock.now(), attributes),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="contacts.csv"'},
    )


async def _contact(db: AsyncSession, contact_id: int) -> Contact:
    contact = await db.get(Contact, contact_id)
    if contact is None or contact.erased_at is not None:
        raise NotFoundException(_("There is no contact with this number."))
    return contact


async def _contact_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    actor: Principal,
    contact: Contact,
    *,
    form: Posted | None = None,
    saved: bool = False,
    status: int = 200,
) -> Template:
    consents = list(
        await db.scalars(
            select(ContactConsent)
            .where(ContactConsent.contact_id == contact.id)
            .order_by(ContactConsent.at.desc(), ContactConsent.id.desc())
        )
    )
    events = list(
        await db.scalars(
            select(Event)
            .where(Event.contact_id == contact.id)
            .order_by(Event.occurred_at.desc(), Event.id.desc())
            .limit(TIMELINE_LIMIT)
        )
    )
    journey_rows = await db.execute(
        select(Journey, Flow.name)
        .join(Flow, Flow.id == Journey.flow_id)
        .where(Journey.contact_id == contact.id)
        .order_by(Journey.entered_at.desc(), Journey.id.desc())
        .limit(TIMELINE_LIMIT)
    )
    journeys = [(journey, name) for journey, name in journey_rows]
    messages = list(
        await db.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.contact_id == contact.id)
            .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
            .limit(TIMELINE_LIMIT)
        )
    )
    owner = await db.get(User, contact.owner_id) if contact.owner_id is not None else None
    attrs = sorted((contact.attributes or {}).items())
    values = (
        form.values
        if form
        else {
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "phone": contact.phone or "",
            "lifecycle_stage": contact.lifecycle_stage,
            "tags": ", ".join(contact.tags or []),
            **{f"attr-{i}-key": k for i, (k, _v) in enumerate(attrs)},
            **{f"attr-{i}-value": "" if v is None else str(v) for i, (_k, v) in enumerate(attrs)},
        }
    )
    rows = sorted({int(m[1]) for k in values if (m := _ATTR_ROW.match(k))})
    return render(
        request,
        "contacts/detail.html",
        {
            "nav": "contacts",
            "contact": contact,
            "owner": (owner.name or owner.email) if owner is not None else None,
            "consents": consents,
            "events": events,
            "journeys": journeys,
            "messages": messages,
            "values": values,
            "attr_rows": [*rows, (max(rows) + 1) if rows else 0],
            "errors": form.errors if form else {},
            "saved": saved,
            "can_edit": actor.allows(Role.marketer),
            "can_erase": actor.allows(Role.admin),
        },
        block="profile" if form is not None or saved else None,
        status_code=status,
    )


@get("/contacts/{contact_id:int}", opt=role(Role.viewer))
async def contact_page(
    request: Request[Any, Any, Any], db: Db, actor: Actor, contact_id: FromPath[int]
) -> Template:
    return await _contact_page(request, db, actor, await _contact(db, contact_id))


class _Refused(Exception):
    """Raised inside a savepoint to undo it."""


async def _apply_edit(db: AsyncSession, contact: Contact, form: Posted) -> None:
    """Validate every field first, then change the contact (all or nothing)."""
    phone = form.get("phone")
    if phone:
        try:
            phone = normalize_phone(phone)
        except InvalidValue as exc:
            form.error("phone", exc.message)
    stage = form.get("lifecycle_stage")
    if not stage or len(stage) > 40:
        form.error("lifecycle_stage", _("Give a lifecycle stage of at most 40 characters."))
    raw: dict[str, Any] = {key: None for key in contact.attributes or {}}
    for index in sorted({int(m[1]) for k in form.values if (m := _ATTR_ROW.match(k))}):
        key, text = form.get(f"attr-{index}-key"), form.get(f"attr-{index}-value")
        if key:
            raw[key] = typed_cell(text) if text else None
    schema = await AttributeSchema.load(db)
    try:
        async with db.begin_nested():
            attributes = await schema.coerce(db, raw)
            if not form.ok:
                raise _Refused  # roll back attributes this refused edit declared
    except InvalidValue as exc:
        form.error("attributes", exc.message)
    except _Refused:
        pass
    if not form.ok:
        return
    contact.first_name = form.get("first_name")[:200]
    contact.last_name = form.get("last_name")[:200]
    contact.phone = phone or None
    contact.lifecycle_stage = stage
    contact.tags = sorted({t.strip() for t in form.get("tags").split(",") if t.strip()})
    contact.attributes = {k: v for k, v in attributes.items() if v is not None}


@post("/contacts/{contact_id:int}", opt=role(Role.marketer) | audited("contact.changed"))
async def edit_contact(
    request: Request[Any, Any, Any], db: Db, actor: Actor, contact_id: FromPath[int]
) -> Template:
    contact = await _contact(db, contact_id)
    form = await read_posted(request)
    await _apply_edit(db, contact, form)
    if not form.ok:
        return await _contact_page(request, db, actor, contact, form=form, status=422)
    record(db, actor, "contact.changed", contact)
    await db.flush()
    return await _contact_page(request, db, actor, contact, saved=True)


@get("/contacts/{contact_id:int}/export.json", opt=role(Role.marketer))
async def export_contact_json(db: Db, actor: Actor, contact_id: FromPath[int]) -> Response[bytes]:
    """Everything stored about the contact, as a JSON download (a GDPR access request)."""
    contact = await _contact(db, contact_id)
    data = await export_contact(db, contact)
    record(db, actor, "contact.exported", contact)
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False, default=str).encode(),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="contact-{contact.id}.json"'},
    )


@post("/contacts/{contact_id:int}/erase", opt=role(Role.admin) | audited("contact.erased"))
async def erase(
    request: Request[Any, Any, Any], db: Db, actor: Actor, contact_id: FromPath[int]
) -> Response[Any]:
    """Erase the person's data everywhere (GDPR); counts stay, anonymised."""
    contact = await _contact(db, contact_id)
    await erase_contact(db, contact)
    record(db, actor, "contact.erased", ("contacts", contact.id))
    return redirect(request, "/contacts")


ROUTES = [contacts_page, export_csv, contact_page, edit_contact, export_contact_json, erase]
