"""Recording events for customers named by id, external id, email or visitor id.

``track_many`` is the one ingestion path: the API's single and batch calls,
hosted forms, inbound hooks and the snippet's events all come through it
(a single call is a batch of one). It checks every item in Python first,
then resolves the batch's customers set-based (contacts not seen before are
created with ``INSERT ... ON CONFLICT DO NOTHING``, so two requests racing to
create the same address both succeed) and hands the events to
``runtime.events.ingest_many``. A bad item is reported on its own and writes
nothing; the others go ahead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import msgspec
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.contacts.normalize import InvalidValue, normalize_email
from backend.contacts.schemas import TrackIn
from backend.i18n import gettext as _
from backend.models import utcnow
from runtime.bulk_insert import insert_rows
from runtime.doorbell import Doorbell
from runtime.events import (
    EventIn,
    IngestResult,
    NamedEventIn,
    Unresolved,
    ingest_many,
    ingest_named,
)
from runtime.sql import CONTACTS, VISITORS, among, dialect_name, upsert_insert
from runtime.versions import VersionCache

MAX_PROPERTIES_CHARS = 32_000
# Racing creators of the same contact settle in one more round; more means something is wrong.
_MAX_ROUNDS = 5
# Batches up to this size try the look-up folded into the insert (``ingest_named``): it
# saves a round trip, which counts for a few events; a large batch with a new contact
# would parse its rows twice for nothing.
FOLD_AT_MOST = 100


@runtime_checkable
class EventRuntime(Protocol):
    """What recording an event needs from the runtime: compiled flows and the doorbell."""

    @property
    def versions(self) -> VersionCache: ...

    @property
    def doorbell(self) -> Doorbell | None: ...


@dataclass
class CheckedItem:
    """A track item checked in Python (``check_item``): what the batch path and the single
    track intake (``backend.contacts.intake``) both write from."""

    data: TrackIn
    email: str | None
    occurred_at: datetime | None
    contact_id: int | None = None


def _check_properties(properties: dict[str, Any]) -> None:
    """Refuse properties whose JSON text (``json.dumps``) is longer than the limit.

    Most properties are far below it: their compact UTF-8 encoding (one C call)
    times six is a bound on that text (an escaped character is at most six
    characters for one byte; a separator grows from one to two), so only
    properties near the limit pay for the exact count.
    """
    try:
        if len(msgspec.json.encode(properties)) * 6 <= MAX_PROPERTIES_CHARS:
            return
    except (TypeError, ValueError, OverflowError):
        pass  # not plain JSON values: the exact count says
    size = len(json.dumps(properties, default=str))
    if size > MAX_PROPERTIES_CHARS:
        raise InvalidValue(
            "properties",
            _("properties are too large (%(size)d characters, at most %(max)d)")
            % {"size": size, "max": MAX_PROPERTIES_CHARS},
        )


def check_item(data: TrackIn, emails: dict[str, str]) -> CheckedItem:
    """Check one item in Python; ``emails`` remembers this batch's normalised addresses."""
    _check_properties(data.properties)
    occurred_at = data.occurred_at
    if occurred_at is not None and occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    email = None
    if data.email:
        email = emails.get(data.email)
        if email is None:
            email = emails[data.email] = normalize_email(data.email)
    return CheckedItem(data, email, occurred_at, data.contact_id)


async def _check_contact_ids(
    session: AsyncSession, items: dict[int, CheckedItem], errors: dict[int, InvalidValue]
) -> None:
    wanted = {item.data.contact_id for item in items.values() if item.data.contact_id is not None}
    if not wanted:
        return
    found = set(
        (
            await session.scalars(
                select(CONTACTS.c.id).where(
                    among(session, CONTACTS.c.id, wanted), CONTACTS.c.erased_at.is_(None)
                )
            )
        ).all()
    )
    for index, item in list(items.items()):
        if item.data.contact_id is not None and item.data.contact_id not in found:
            errors[index] = InvalidValue(
                "contact_id", _("no contact with id %(id)d") % {"id": item.data.contact_id}
            )
            del items[index]


async def _resolve_contacts(
    session: AsyncSession,
    items: dict[int, CheckedItem],
    errors: dict[int, InvalidValue],
    looked_up: Sequence[Any] | None = None,
) -> None:
    """Find or create the contacts named by external id (first) or email, set-based.

    An event about someone not seen before creates them: the event is not
    lost, and a later identify fills in the rest. The contacts created come
    back from the insert; only those a racing request created first (the
    insert skipped them) take another look-up. ``looked_up`` is the first
    look-up when it was already made (rows of id, external_id, email).
    """
    named = {
        i: item
        for i, item in items.items()
        if item.contact_id is None and (item.data.external_id or item.email)
    }
    for _round in range(_MAX_ROUNDS):
        if not named:
            return
        if looked_up is None:
            looked_up = await _look_up(session, named.values())
        by_ext, by_email = _keyed(looked_up)
        looked_up = None
        new: dict[tuple[str | None, str | None], None] = {}
        for index, item in list(named.items()):
            ext = item.data.external_id
            found = _found(item, by_ext, by_email)
            if found is not None:
                item.contact_id = found
                del named[index]
            elif ext and item.email in by_email:
                errors[index] = InvalidValue(
                    "email",
                    _(
                        "email “%(email)s” belongs to a contact with another external_id "
                        "than “%(external_id)s”"
                    )
                    % {"email": item.email, "external_id": ext},
                )
                del items[index], named[index]
            else:
                new[(ext, None if ext else item.email)] = None
        if not new:
            return
        # Items naming the same new external id but different emails create it
        # with the first email, as one call after the other would.
        first_email: dict[str, str | None] = {}
        for item in named.values():
            if item.data.external_id:
                first_email.setdefault(item.data.external_id, item.email)
        by_ext, by_email = _keyed(await _create_contacts(session, new, first_email))
        for index, item in list(named.items()):
            found = _found(item, by_ext, by_email)
            if found is not None:
                item.contact_id = found
                del named[index]
        # Whatever a racing request created is found in the next round.
    raise RuntimeError("contacts could not be resolved; retry the request")


def _found(item: Any, by_ext: dict[str | None, int], by_email: dict[str | None, int]) -> int | None:
    """The contact an item names: by its external id when it has one, else by email."""
    ext = item.data.external_id
    return by_ext.get(ext) if ext else by_email.get(item.email)


def _keyed(rows: Sequence[Any]) -> tuple[dict[str | None, int], dict[str | None, int]]:
    """Contact ids by external id and by email, from rows of (id, external_id, email)."""
    by_ext = {r.external_id: r.id for r in rows if r.external_id is not None}
    by_email = {r.email: r.id for r in rows if r.email is not None}
    return by_ext, by_email


async def _look_up(session: AsyncSession, named: Iterable[CheckedItem]) -> Sequence[Any]:
    ext_ids = {it.data.external_id for it in named if it.data.external_id}
    emails = {it.email for it in named if it.email}
    clauses = []
    if ext_ids:
        clauses.append(among(session, CONTACTS.c.external_id, ext_ids))
    if emails:
        clauses.append(among(session, CONTACTS.c.email, emails))
    query = select(CONTACTS.c.id, CONTACTS.c.external_id, CONTACTS.c.email).where(or_(*clauses))
    return (await session.execute(query)).all()


async def _create_contacts(
    session: AsyncSession,
    new: dict[tuple[str | None, str | None], None],
    first_email: dict[str, str | None],
) -> Sequence[Any]:
    """Insert the contacts not found, skipping any a racing request created meanwhile;
    the created ones' (id, external_id, email)."""
    keys = sorted(new, key=lambda k: (k[0] or "", k[1] or ""))
    emails = [first_email[ext] if ext else email for ext, email in keys]
    now = utcnow()
    returning = "RETURNING id, external_id, email"
    if dialect_name(session) == "postgresql":
        columns: dict[str, Sequence[Any]] = {
            "external_id": [ext for ext, _email in keys],
            "email": emails,
            "created_at": [now] * len(keys),
            "updated_at": [now] * len(keys),
        }
        tail = f"ON CONFLICT DO NOTHING {returning}"
        created: Sequence[Any] = (await insert_rows(session, CONTACTS, columns, tail)).all()
        return created
    rows = [
        {"external_id": ext, "email": email, "created_at": now, "updated_at": now}
        for (ext, _key), email in zip(keys, emails, strict=True)
    ]
    stmt = (
        upsert_insert(session, CONTACTS)
        .on_conflict_do_nothing()
        .returning(CONTACTS.c.id, CONTACTS.c.external_id, CONTACTS.c.email)
    )
    return (await session.execute(stmt, rows)).all()


async def _ensure_visitors(
    session: AsyncSession, items: dict[int, CheckedItem], now: datetime
) -> dict[str, int | None]:
    """Create unseen visitors, mark the others seen: one statement; returns their contacts."""
    ids = sorted({it.data.visitor_id for it in items.values() if it.data.visitor_id is not None})
    if not ids:
        return {}
    stmt = upsert_insert(session, VISITORS)
    stmt = stmt.on_conflict_do_update(
        index_elements=[VISITORS.c.id], set_={"last_seen_at": stmt.excluded.last_seen_at}
    ).returning(VISITORS.c.id, VISITORS.c.contact_id)
    rows = [{"id": v, "traits": {}, "first_seen_at": now, "last_seen_at": now} for v in ids]
    return {row.id: row.contact_id for row in await session.execute(stmt, rows)}


async def track_many(
    session: AsyncSession,
    runtime: EventRuntime,
    batch: Sequence[TrackIn | InvalidValue],
    *,
    source: str,
    now: datetime | None = None,
) -> list[IngestResult | InvalidValue]:
    """Store events and let flows react; one result or error per item, in order.

    Items already known to be bad (``InvalidValue``) are passed through, so
    callers that validate shapes themselves keep their indexes.
    """
    now = now or utcnow()
    errors: dict[int, InvalidValue] = {}
    items: dict[int, CheckedItem] = {}
    emails: dict[str, str] = {}
    for index, data in enumerate(batch):
        if isinstance(data, InvalidValue):
            errors[index] = data
            continue
        try:
            items[index] = check_item(data, emails)
        except InvalidValue as exc:
            errors[index] = exc
    looked_up: Sequence[Any] | None = None
    if (
        0 < len(items) <= FOLD_AT_MOST
        and dialect_name(session) == "postgresql"
        and all(map(named_only, items.values()))
    ):
        named = await ingest_named(
            session,
            runtime.versions,
            [as_named(item, source) for item in items.values()],
            now=now,
            doorbell=runtime.doorbell,
        )
        if not isinstance(named, Unresolved):
            return _in_order(len(batch), errors, named)
        looked_up = [_Found(*row) for row in named.found]
    await _check_contact_ids(session, items, errors)
    await _resolve_contacts(session, items, errors, looked_up)
    linked = await _ensure_visitors(session, items, now)
    events: list[EventIn] = []
    for item in items.values():
        contact_id, visitor_id = item.contact_id, item.data.visitor_id
        # A visitor who became a contact is that contact from now on (identity stitching).
        if contact_id is None and visitor_id is not None:
            contact_id = linked.get(visitor_id)
        events.append(
            EventIn(
                type=item.data.type,
                contact_id=contact_id,
                visitor_id=visitor_id if contact_id is None else None,
                properties=item.data.properties,
                dedupe_key=item.data.idempotency_key,
                occurred_at=item.occurred_at,
                source=source,
            )
        )
    results = await ingest_many(
        session, runtime.versions, events, now=now, doorbell=runtime.doorbell
    )
    return _in_order(len(batch), errors, results)


def _in_order(
    size: int, errors: dict[int, InvalidValue], results: Sequence[IngestResult]
) -> list[IngestResult | InvalidValue]:
    """One answer per item: its error, else the next result."""
    out: list[IngestResult | InvalidValue] = []
    stored = iter(results)
    for index in range(size):
        out.append(errors[index] if index in errors else next(stored))
    return out


@dataclass(frozen=True)
class _Found:
    id: int
    external_id: str | None
    email: str | None


def named_only(item: CheckedItem) -> bool:
    """Whether the item names its customer by external id or email only (``ingest_named``)."""
    return (
        item.contact_id is None
        and item.data.visitor_id is None
        and bool(item.data.external_id or item.email)
    )


def as_named(item: CheckedItem, source: str) -> NamedEventIn:
    return NamedEventIn(
        type=item.data.type,
        external_id=item.data.external_id or None,
        email=item.email,
        properties=item.data.properties,
        dedupe_key=item.data.idempotency_key,
        occurred_at=item.occurred_at,
        source=source,
    )


async def track(
    session: AsyncSession,
    runtime: EventRuntime,
    data: TrackIn,
    *,
    source: str,
    now: datetime | None = None,
) -> IngestResult:
    """Store one event and let flows react (a batch of one); raises InvalidValue for a bad item."""
    (result,) = await track_many(session, runtime, [data], source=source, now=now)
    if isinstance(result, InvalidValue):
        raise result
    return result
