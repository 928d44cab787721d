"""Recording an event for a customer named by id, external id, email or visitor id."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.contacts.normalize import InvalidValue, normalize_email
from backend.contacts.schemas import TrackIn
from backend.i18n import gettext as _
from backend.models import Contact, Visitor, utcnow
from runtime.doorbell import Doorbell
from runtime.events import IngestResult, ingest
from runtime.versions import VersionCache

MAX_PROPERTIES_CHARS = 32_000


@runtime_checkable
class EventRuntime(Protocol):
    """What recording an event needs from the runtime: compiled flows and the doorbell."""

    @property
    def versions(self) -> VersionCache: ...

    @property
    def doorbell(self) -> Doorbell | None: ...


async def _contact_id(session: AsyncSession, data: TrackIn) -> int | None:
    if data.contact_id is not None:
        found = await session.scalar(
            select(Contact.id).where(Contact.id == data.contact_id, Contact.erased_at.is_(None))
        )
        if found is None:
            raise InvalidValue(
                "contact_id", _("no contact with id %(id)d") % {"id": data.contact_id}
            )
        return int(found)
    if data.external_id is None and data.email is None:
        return None
    email = normalize_email(data.email) if data.email else None
    column, value = (
        (Contact.external_id, data.external_id) if data.external_id else (Contact.email, email)
    )
    found = await session.scalar(select(Contact.id).where(column == value))
    if found is not None:
        return int(found)
    # An event about someone not seen before creates them: the event is not lost,
    # and a later identify fills in the rest.
    async with session.begin_nested():
        contact = Contact(external_id=data.external_id, email=email, attributes={}, tags=[])
        session.add(contact)
        await session.flush()
    return contact.id


async def _ensure_visitor(session: AsyncSession, visitor_id: str, now: datetime) -> int | None:
    visitor = await session.get(Visitor, visitor_id)
    if visitor is None:
        async with session.begin_nested():
            visitor = Visitor(id=visitor_id, traits={}, first_seen_at=now, last_seen_at=now)
            session.add(visitor)
            await session.flush()
    else:
        visitor.last_seen_at = now
    return visitor.contact_id


def _check_properties(properties: dict[str, Any]) -> None:
    size = len(json.dumps(properties, default=str))
    if size > MAX_PROPERTIES_CHARS:
        raise InvalidValue(
            "properties",
            _("properties are too large (%(size)d characters, at most %(max)d)")
            % {"size": size, "max": MAX_PROPERTIES_CHARS},
        )


async def track(
    session: AsyncSession,
    runtime: EventRuntime,
    data: TrackIn,
    *,
    source: str,
    now: datetime | None = None,
) -> IngestResult:
    """Store one event and let flows react; raises InvalidValue for a bad item."""
    now = now or utcnow()
    _check_properties(data.properties)
    occurred_at = data.occurred_at
    if occurred_at is not None and occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    contact_id = await _contact_id(session, data)
    visitor_id = data.visitor_id
    if visitor_id is not None:
        linked = await _ensure_visitor(session, visitor_id, now)
        # A visitor who became a contact is that contact from now on (identity stitching).
        if contact_id is None and linked is not None:
            contact_id, visitor_id = linked, None
    return await ingest(
        session,
        runtime.versions,
        type=data.type,
        now=now,
        contact_id=contact_id,
        visitor_id=visitor_id if contact_id is None else None,
        properties=data.properties,
        dedupe_key=data.idempotency_key,
        occurred_at=occurred_at,
        source=source,
        doorbell=runtime.doorbell,
    )
