"""Identify many contacts in a few statements: the fast path of CSV import.

``identify`` costs several round trips per contact (a savepoint, a lookup, an
insert). For a chunk of rows this module looks every contact up with one
query, applies the rows in memory and writes them with one insert of the new
contacts and one flush, without a savepoint. Whatever the fast path cannot
decide alone goes through ``identify`` one by one, with its full checks: a
row naming an attribute not yet declared (at once, so the rows after it can
take the fast path), a second row for the same person (after the batch), a
row whose email and external id belong to two contacts, a row that would
give a contact a new email or external id, and a new contact another writer
created meanwhile.
The outcome per row is the same as calling ``identify`` for each in order.

Those stages lock contacts in different orders (item order, key order, id
order), and declare new attributes in item order, so two batches naming the
same people or new attributes in opposite orders could each hold a row the
other waits for: a deadlock on PostgreSQL. A batch therefore first takes a
transaction-scoped advisory lock per person and per new attribute it names,
in one global order; a batch overlapping another waits for it whole before
touching a row.
"""

from __future__ import annotations

import hashlib
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, text
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
from backend.models import Channel, Contact, utcnow
from runtime.sql import CONTACTS, among, dialect_name, upsert_insert

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
    await _lock_names(session, items, schema)

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


def _email_of(data: IdentifyIn) -> str | None:
    # An address that does not normalise is refused later: nothing to lock.
    with suppress(InvalidValue):
        return normalize_email(data.email) if data.email else None
    return None


def _new_attributes(data: IdentifyIn, schema: AttributeSchema) -> set[str]:
    return {f"attribute:{k}" for k, v in data.attributes.items() if v is not None} - {
        f"attribute:{k}" for k in schema.types
    }


async def _lock_names(
    session: AsyncSession, items: list[IdentifyIn], schema: AttributeSchema
) -> None:
    """Lock every person and new attribute named, until the transaction ends, in one order.

    First an advisory lock per name (email, external id, attribute key) in
    ascending order: one statement per lock, sent in order (a single
    statement may evaluate its locks in any order). Then the existing
    contacts' rows, by id: a batch naming someone by email and another by
    external id share no name but do share the row. ``FOR NO KEY UPDATE`` is
    the lock an update takes anyway; events and consent rows pointing at the
    contact are not held up. SQLite has one writer at a time and needs none.
    """
    if dialect_name(session) != "postgresql":
        return
    emails = {e for data in items if (e := _email_of(data))}
    external_ids = {data.external_id for data in items if data.external_id}
    names = {f"email:{e}" for e in emails} | {f"external_id:{x}" for x in external_ids}
    names |= {n for data in items for n in _new_attributes(data, schema)}
    keys = sorted({lock_key(name) for name in names})
    if keys:
        await session.execute(_ADVISORY_LOCK, [{"key": key} for key in keys])
    if emails or external_ids:
        named = or_(
            among(session, CONTACTS.c.email, emails),
            among(session, CONTACTS.c.external_id, external_ids),
        )
        await session.execute(
            select(CONTACTS.c.id)
            .where(named)
            .order_by(CONTACTS.c.id)
            .with_for_update(key_share=True)
        )


def lock_key(name: str) -> int:
    """A stable signed 64-bit key (Python's ``hash`` differs between processes)."""
    digest = hashlib.blake2b(f"touchflow.identify:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


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
    """Write the prepared rows in a few statements; returns the indices left for the slow path.

    No savepoint: nothing written here can be refused by the database. New
    contacts go in with ``INSERT ... ON CONFLICT DO NOTHING`` (a row someone
    else created meanwhile is left to ``identify``); updates never touch the
    unique email or external id (a row that would is left to ``identify``,
    which checks it); unknown consent channels and two rows normalising to one
    address are found in Python first.
    """
    if not rows:
        return []
    found = await _existing(session, rows)
    by_email = {c.email: c for c in found if c.email}
    by_external = {c.external_id: c for c in found if c.external_id}
    slow: list[int] = []
    new: list[tuple[_Row, Contact]] = []
    written: list[tuple[_Row, Contact, bool]] = []
    emails: set[str] = set()
    now = utcnow()
    for row in rows:
        if (row.email and row.email in emails) or any(c not in _CHANNELS for c in row.data.consent):
            slow.append(row.index)  # identify explains or orders it
            continue
        if row.email:
            emails.add(row.email)
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
            if not (row.email or row.data.external_id):
                slow.append(row.index)
                continue
            contact = Contact(external_id=row.data.external_id, attributes={}, tags=[], consent={})
            apply_identify(contact, row.data, row.email, row.phone, row.timezone, row.attributes)
            new.append((row, contact))
            continue
        if _takes_a_key(contact, row):
            slow.append(row.index)
            continue
        apply_identify(contact, row.data, row.email, row.phone, row.timezone, row.attributes)
        contact.updated_at = now
        written.append((row, contact, False))
    created_now, raced = await _insert_new(session, new, now)
    slow.extend(raced)
    written.extend((row, contact, True) for row, contact in created_now)
    await session.flush()
    for row, contact, _created in written:
        for channel, granted in row.data.consent.items():
            record_consent(session, contact, channel, granted, source, now)
    await session.flush()
    for row, contact, created in written:
        outcomes[row.index] = Identified(contact, created)
    return slow


_CHANNELS = {c.value for c in Channel}
_DEFAULT_STAGE = CONTACTS.c.lifecycle_stage.default.arg  # type: ignore[union-attr]


def _takes_a_key(contact: Contact, row: _Row) -> bool:
    """Whether updating ``contact`` from ``row`` would set its email or external id.

    Another writer may have taken that value since the look-up; ``identify``
    writes such a row in a savepoint of its own.
    """
    if row.email is not None and contact.email != row.email:
        return True
    return bool(row.data.external_id) and not contact.external_id


async def _insert_new(
    session: AsyncSession, new: list[tuple[_Row, Contact]], now: datetime
) -> tuple[list[tuple[_Row, Contact]], list[int]]:
    """Insert new contacts in one statement; (the created, as loaded), (rows someone beat)."""
    if not new:
        return [], []
    # In key order, as every writer of contacts inserts: two requests inserting the
    # same new people in other orders would otherwise wait on each other (a deadlock).
    new = sorted(new, key=lambda pair: (pair[1].external_id or "", pair[1].email or ""))
    values = [
        {
            "external_id": c.external_id,
            "email": c.email,
            "phone": c.phone,
            "first_name": c.first_name or "",
            "last_name": c.last_name or "",
            "attributes": c.attributes or {},
            "tags": c.tags or [],
            "lifecycle_stage": c.lifecycle_stage or _DEFAULT_STAGE,
            "timezone": c.timezone,
            "consent": {},
            "created_at": now,
            "updated_at": now,
        }
        for _row, c in new
    ]
    stmt = upsert_insert(session, CONTACTS).on_conflict_do_nothing()
    returned = await session.execute(
        stmt.returning(CONTACTS.c.id, CONTACTS.c.external_id, CONTACTS.c.email), values
    )
    ids = {(r.external_id, None if r.external_id else r.email): r.id for r in returned}
    mine = {
        row.index: ids[key]
        for row, c in new
        if (key := (c.external_id, None if c.external_id else c.email)) in ids
    }
    loaded = {
        c.id: c for c in await session.scalars(select(Contact).where(Contact.id.in_(mine.values())))
    }
    created = [(row, loaded[mine[row.index]]) for row, _c in new if row.index in mine]
    return created, [row.index for row, _c in new if row.index not in mine]
