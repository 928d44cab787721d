"""Identify many contacts in a few statements: the fast path of CSV import.

``identify`` costs several round trips per contact (a savepoint, a lookup, an
insert). For a chunk of rows this module looks every contact up with one
query, applies the rows in memory and writes them with one flush. Whatever
the fast path cannot decide alone goes through ``identify`` one by one, with
its full checks: a row naming an attribute not yet declared (at once, so the
rows after it can take the fast path), a second row for the same person (after
the batch), a row whose email and external id belong to two contacts, and the
whole chunk if the database refuses the batch (a concurrent writer).
The outcome per row is the same as calling ``identify`` for each in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.contacts.identify import (
    AttributeSchema,
    Identified,
    apply_identify,
    check_timezone,
    identify,
    record_consent,
)
from backend.contacts.normalize import InvalidValue, normalize_email, normalize_phone
from backend.contacts.schemas import IdentifyIn
from backend.models import Contact, utcnow

Outcome = Identified | InvalidValue | None  # None: skipped by the create/update mode


@dataclass
class _Row:
    index: int
    data: IdentifyIn
    email: str | None
    phone: str | None
    timezone: str | None
    attributes: dict[str, Any]


def _prepare(data: IdentifyIn, index: int, region: str) -> _Row:
    return _Row(
        index=index,
        data=data,
        email=normalize_email(data.email) if data.email else None,
        phone=normalize_phone(data.phone, region) if data.phone else None,
        timezone=check_timezone(data.timezone) if data.timezone else None,
        attributes={},
    )


async def identify_many(
    session: AsyncSession,
    items: list[IdentifyIn],
    *,
    source: str,
    schema: AttributeSchema,
    default_region: str = "SE",
    create: bool = True,
    update: bool = True,
) -> list[Outcome]:
    """One outcome per item, in order: the contact, the reason it was refused, or None."""
    outcomes: list[Outcome] = [None] * len(items)
    fast: list[_Row] = []
    slow: list[int] = []
    claimed: set[tuple[str, str]] = set()

    async def one_by_one(index: int) -> None:
        try:
            outcomes[index] = await identify(
                session,
                items[index],
                source=source,
                schema=schema,
                default_region=default_region,
                create=create,
                update=update,
            )
        except InvalidValue as exc:
            outcomes[index] = exc

    for index, data in enumerate(items):
        keys = {("email", data.email.lower())} if data.email else set()
        if data.external_id:
            keys.add(("external_id", data.external_id))
        if keys & claimed:
            # A second row for someone: it must follow the first, so after the batch.
            claimed |= keys
            slow.append(index)
            continue
        claimed |= keys
        if any(k not in schema.types for k, v in data.attributes.items() if v is not None):
            # Declares the new attribute (typed from this row) for the rows after it.
            await one_by_one(index)
            continue
        try:
            row = _prepare(data, index, default_region)
            row.attributes = await schema.coerce(session, data.attributes)
        except InvalidValue as exc:
            outcomes[index] = exc
            continue
        fast.append(row)
    slow.extend(await _write_fast(session, fast, outcomes, source, create, update))
    for index in sorted(slow):
        await one_by_one(index)
    return outcomes


async def _existing(session: AsyncSession, rows: list[_Row]) -> list[Contact]:
    emails = [r.email for r in rows if r.email]
    external_ids = [r.data.external_id for r in rows if r.data.external_id]
    clauses = []
    if emails:
        clauses.append(Contact.email.in_(emails))
    if external_ids:
        clauses.append(Contact.external_id.in_(external_ids))
    if not clauses:
        return []
    return list(await session.scalars(select(Contact).where(or_(*clauses))))


async def _write_fast(
    session: AsyncSession,
    rows: list[_Row],
    outcomes: list[Outcome],
    source: str,
    create: bool,
    update: bool,
) -> list[int]:
    """Write the prepared rows with one flush; returns the indices left for the slow path."""
    if not rows:
        return []
    found = await _existing(session, rows)
    by_email = {c.email: c for c in found if c.email}
    by_external = {c.external_id: c for c in found if c.external_id}
    slow: list[int] = []
    written: list[tuple[_Row, Contact, bool]] = []
    now = utcnow()
    try:
        async with session.begin_nested():
            for row in rows:
                one = by_external.get(row.data.external_id) if row.data.external_id else None
                other = by_email.get(row.email) if row.email else None
                if one is not None and other is not None and one is not other:
                    slow.append(row.index)  # identify explains the conflict
                    continue
                contact = one or other
                created = contact is None
                if (created and not create) or (not created and not update):
                    continue
                if contact is None:
                    contact = Contact(
                        external_id=row.data.external_id, attributes={}, tags=[], consent={}
                    )
                    session.add(contact)
                apply_identify(
                    contact, row.data, row.email, row.phone, row.timezone, row.attributes
                )
                contact.updated_at = now
                written.append((row, contact, created))
            await session.flush()
            for row, contact, _created in written:
                for channel, granted in row.data.consent.items():
                    record_consent(session, contact, channel, granted, source, now)
            await session.flush()
    except (IntegrityError, InvalidValue):
        # Someone else wrote one of these people meanwhile, two rows normalise to the
        # same email, or a consent channel is unknown: the savepoint's rollback expunged
        # the new contacts and expired the changed ones; redo the chunk row by row.
        return [row.index for row in rows]
    for row, contact, created in written:
        outcomes[row.index] = Identified(contact, created)
    return slow
