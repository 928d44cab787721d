"""Identify (create or update) contacts, and record consent, all-or-nothing per contact."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.contacts.normalize import (
    MAX_ATTRIBUTES,
    AttributeType,
    InvalidValue,
    check_attribute_key,
    coerce_attribute,
    infer_type,
    normalize_email,
    normalize_phone,
)
from backend.contacts.schemas import IdentifyIn
from backend.i18n import gettext as _
from backend.models import Channel, Contact, ContactConsent, utcnow
from backend.models.ingestion import AttributeDefinition
from runtime.messaging.suppression import ConsentChange
from runtime.sql import CONTACTS, upsert_insert

CONTACT_FIELDS = ("email", "phone", "first_name", "last_name", "lifecycle_stage", "timezone")


@dataclass(frozen=True)
class Identified:
    contact: Contact
    created: bool


class AttributeSchema:
    """Declared attribute types, loaded once per request/batch and extended as keys appear."""

    def __init__(self, types: dict[str, AttributeType]) -> None:
        self.types = types

    @classmethod
    async def load(cls, session: AsyncSession) -> AttributeSchema:
        rows = await session.execute(select(AttributeDefinition.key, AttributeDefinition.type))
        return cls({key: AttributeType(kind) for key, kind in rows})

    async def coerce(self, session: AsyncSession, raw: dict[str, Any]) -> dict[str, Any]:
        """Validate every attribute; declare unseen keys with the type of their value."""
        if len(raw) > MAX_ATTRIBUTES:
            raise InvalidValue(
                "attributes", _("at most %(max)d attributes per contact") % {"max": MAX_ATTRIBUTES}
            )
        clean: dict[str, Any] = {}
        for key, value in raw.items():
            check_attribute_key(key)
            kind = self.types.get(key)
            if kind is None and value is not None:
                kind = infer_type(value)
                await self._declare(session, key, kind)
            if kind is not None:
                clean[key] = coerce_attribute(key, value, kind)
        return clean

    async def _declare(self, session: AsyncSession, key: str, kind: AttributeType) -> None:
        try:
            async with session.begin_nested():
                session.add(AttributeDefinition(key=key, type=kind.value))
        except IntegrityError:
            # Declared concurrently by someone else: their type wins, for everyone.
            declared = await session.scalar(
                select(AttributeDefinition.type).where(AttributeDefinition.key == key)
            )
            kind = AttributeType(declared) if declared else kind
        self.types[key] = kind


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidValue("timezone", _("unknown time zone “%(tz)s”") % {"tz": name}) from exc
    return name


async def _find(session: AsyncSession, data: IdentifyIn, email: str | None) -> Contact | None:
    clauses = []
    if data.external_id:
        clauses.append(Contact.external_id == data.external_id)
    if email:
        clauses.append(Contact.email == email)
    found = list((await session.scalars(select(Contact).where(or_(*clauses)))).all())
    if len(found) > 1:
        raise InvalidValue(
            "email",
            _(
                "external_id “%(external_id)s” and email “%(email)s” belong to two "
                "different contacts; merge them first"
            )
            % {"external_id": data.external_id, "email": email},
        )
    return found[0] if found else None


def record_consent(
    session: AsyncSession, contact: Contact, channel: str, granted: bool, source: str, at: datetime
) -> None:
    """Keep the history row and the current value every send checks, together.

    ``contact`` must be flushed (have an id).
    """
    if channel not in {c.value for c in Channel}:
        raise InvalidValue(f"consent.{channel}", _("unknown channel “%(c)s”") % {"c": channel})
    current = dict(contact.consent or {})
    if current.get(channel, {}).get("granted") is granted:
        return
    current[channel] = {"granted": granted, "at": at.isoformat(), "source": source}
    contact.consent = current
    session.add(
        ContactConsent(
            contact_id=contact.id, channel=channel, granted=granted, source=source, at=at
        )
    )


def record_consent_change(session: AsyncSession, contact: Contact, change: ConsentChange) -> None:
    """Record a consent change the runtime's suppression list reports (unsubscribe, STOP)."""
    record_consent(session, contact, change.channel, change.granted, change.source, change.at)


async def identify(
    session: AsyncSession,
    data: IdentifyIn,
    *,
    source: str,
    schema: AttributeSchema,
    default_region: str = "SE",
    create: bool = True,
    update: bool = True,
) -> Identified | None:
    """Create or update one contact inside a savepoint: it is written whole or not at all.

    Returns None when the contact exists and ``update`` is off, or is new and
    ``create`` is off (CSV import's create-only / update-only modes).
    """
    email = normalize_email(data.email) if data.email else None
    phone = normalize_phone(data.phone, default_region) if data.phone else None
    timezone = check_timezone(data.timezone) if data.timezone else None
    declared = set(schema.types)
    try:
        return await _upsert(session, data, schema, source, email, phone, timezone, create, update)
    except BaseException:
        # The savepoint rolled back any attribute this item declared: forget them too.
        schema.types = {k: v for k, v in schema.types.items() if k in declared}
        raise


def apply_identify(
    contact: Contact,
    data: IdentifyIn,
    email: str | None,
    phone: str | None,
    timezone: str | None,
    attributes: dict[str, Any],
) -> None:
    """Copy the given (already normalised) values onto ``contact``; absent values are kept."""
    values = {
        "email": email,
        "phone": phone,
        "first_name": data.first_name,
        "last_name": data.last_name,
        "lifecycle_stage": data.lifecycle_stage,
        "timezone": timezone,
    }
    for field in CONTACT_FIELDS:
        if values[field] is not None:
            setattr(contact, field, values[field])
    if data.external_id and not contact.external_id:
        contact.external_id = data.external_id
    merged = dict(contact.attributes or {})
    for key, value in attributes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    contact.attributes = merged
    if data.tags is not None:
        contact.tags = sorted({tag.strip() for tag in data.tags if tag.strip()})


async def _create(session: AsyncSession, data: IdentifyIn, email: str | None) -> Contact | None:
    """Insert a new contact by its identifiers, or None when a concurrent request just did.

    ``ON CONFLICT DO NOTHING`` waits for the other writer's commit instead of
    failing on the unique index, so two posts of a new address both succeed.
    """
    now = utcnow()
    stmt = (
        upsert_insert(session, CONTACTS)
        .values(
            external_id=data.external_id,
            email=email,
            attributes={},
            tags=[],
            consent={},
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
        .returning(CONTACTS.c.id)
    )
    new_id = await session.scalar(stmt)
    return None if new_id is None else await session.get(Contact, new_id)


async def _upsert(
    session: AsyncSession,
    data: IdentifyIn,
    schema: AttributeSchema,
    source: str,
    email: str | None,
    phone: str | None,
    timezone: str | None,
    create: bool,
    update: bool,
) -> Identified | None:
    async with session.begin_nested():
        attributes = await schema.coerce(session, data.attributes)
        contact = await _find(session, data, email)
        created = contact is None
        if (created and not create) or (not created and not update):
            return None
        if contact is None:
            contact = await _create(session, data, email)
            created = contact is not None
            # Lost a race to a request creating the same person: theirs it is.
            contact = contact or await _find(session, data, email)
            if contact is None:
                raise RuntimeError("a contact was created and removed meanwhile; retry")
            if not created and not update:
                return None
        apply_identify(contact, data, email, phone, timezone, attributes)
        now = utcnow()
        contact.updated_at = now
        await session.flush()  # a new contact needs its id for the consent history
        for channel, granted in data.consent.items():
            record_consent(session, contact, channel, granted, source, now)
        await session.flush()
    return Identified(contact, created)
