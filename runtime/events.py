"""Event ingestion, set-based: append the facts, enroll matching flows, wake waiting journeys.

``ingest_many`` takes a batch of events whose customers are already known and
does each stage once for the whole batch, inside the caller's transaction:

1. one ``INSERT`` of every event, ``ON CONFLICT (dedupe_key) DO NOTHING``
   (on PostgreSQL the rows travel as one JSON parameter, ``runtime.bulk_insert``,
   and the active flows and whether any customer has a live journey come back
   with it); a duplicate (already stored, or earlier in the same batch) answers
   with the stored event and does nothing else;
2. one read of the active flows and, when some trigger listens for these
   event types, one read of the customers' profiles and of earlier journeys
   (re-entry rules), then one ``INSERT`` of the new journeys,
   ``ON CONFLICT (entry_key) DO NOTHING``;
3. one read of the customers' live journeys (goals) with their waits (none
   when the insert said no customer has one), then one ``UPDATE`` waking
   those waiting for these event types;
4. one doorbell ring after commit, whatever the batch size.

The per-event decisions are made in Python in the order of the items, so a
batch leaves the database as the same events ingested one by one would:
the first matching event ends a wait, the first trigger of a customer wins
the entry, a goal sees the journeys earlier events started. ``ingest`` is
the batch of one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import case, literal, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from nodes.sdk import EventRecord, Profile
from runtime.bulk_insert import insert_rows
from runtime.claims import drop_leases
from runtime.doorbell import Doorbell, ring_after_commit
from runtime.enroll import entry_key, new_journey
from runtime.models import FlowStatus, JourneyStatus
from runtime.models.journeys import LIVE_STATUSES
from runtime.profiles import CustomerKey, customer_key, load_profiles
from runtime.sql import (
    EVENTS,
    FLOWS,
    JOURNEYS,
    among,
    close_open_steps,
    dialect_name,
    upsert_insert,
)
from runtime.versions import CompiledFlow, VersionCache

__all__ = [
    "EventIn",
    "IngestResult",
    "NamedEventIn",
    "Unresolved",
    "ingest",
    "ingest_many",
    "ingest_named",
    "matches",
]


@dataclass(frozen=True)
class EventIn:
    """One event to store, for a contact or (when ``contact_id`` is None) a visitor."""

    type: str
    contact_id: int | None = None
    visitor_id: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    dedupe_key: str | None = None
    occurred_at: datetime | None = None
    source: str = "api"
    # Unverified (see ``runtime.models.Event.claimed``): kept with its visitor so a
    # later proof for that visitor can verify it.
    claimed: bool = False

    def __post_init__(self) -> None:
        if self.contact_id is None and self.visitor_id is None:
            raise ValueError("an event belongs to a contact or a visitor")

    @property
    def customer(self) -> CustomerKey:
        return customer_key(self.contact_id, self.visitor_id)


@dataclass(frozen=True)
class IngestResult:
    event_id: int
    duplicate: bool = False
    enrolled: tuple[int, ...] = ()
    woken: tuple[int, ...] = ()
    goals: tuple[int, ...] = ()


def matches(wait_match: Mapping[str, Any] | None, properties: Mapping[str, Any]) -> bool:
    """A wait's match is a subset of the event's properties (equal values, key by key)."""
    return all(properties.get(key, _MISSING) == value for key, value in (wait_match or {}).items())


_MISSING = object()
# Flows whose published version enrolls customers.
_ENROLLING = (FLOWS.c.status == FlowStatus.active.value, FLOWS.c.published_version_id.is_not(None))


async def ingest(
    session: AsyncSession,
    versions: VersionCache,
    *,
    type: str,
    now: datetime,
    contact_id: int | None = None,
    visitor_id: str | None = None,
    properties: Mapping[str, Any] | None = None,
    dedupe_key: str | None = None,
    occurred_at: datetime | None = None,
    source: str = "api",
    doorbell: Doorbell | None = None,
) -> IngestResult:
    """Store one event for a customer and let flows react to it: a batch of one."""
    # A contact's events are the contact's, even when a stitched visitor sent them.
    item = EventIn(
        type=type,
        contact_id=contact_id,
        visitor_id=visitor_id if contact_id is None else None,
        properties=dict(properties or {}),
        dedupe_key=dedupe_key,
        occurred_at=occurred_at,
        source=source,
    )
    (result,) = await ingest_many(session, versions, [item], now=now, doorbell=doorbell)
    return result


@dataclass
class _Batch:
    items: Sequence[EventIn]
    now: datetime
    # Per item: its event id, and the item it repeats (own index when stored by it).
    event_ids: list[int] = field(default_factory=list)
    first_of: list[int] = field(default_factory=list)
    stored: list[int] = field(default_factory=list)  # indexes of items whose event is new
    enrolled: dict[int, list[int]] = field(default_factory=dict)
    woken: dict[int, list[int]] = field(default_factory=dict)
    goals: dict[int, list[int]] = field(default_factory=dict)
    enrolling: set[int] | None = None  # published versions of active flows, when known
    any_live: bool = True  # False: none of the customers had a live journey at the insert

    def record(self, index: int) -> EventRecord:
        item = self.items[index]
        return EventRecord(
            type=item.type,
            occurred_at=item.occurred_at or self.now,
            properties=dict(item.properties),
            id=self.event_ids[index],
            source=item.source,
        )

    def results(self) -> list[IngestResult]:
        stored = set(self.stored)
        return [
            IngestResult(event_id=self.event_ids[i], duplicate=True)
            if i not in stored
            else IngestResult(
                event_id=self.event_ids[i],
                enrolled=tuple(self.enrolled.get(i, ())),
                woken=tuple(self.woken.get(i, ())),
                goals=tuple(self.goals.get(i, ())),
            )
            for i in range(len(self.items))
        ]


async def ingest_many(
    session: AsyncSession,
    versions: VersionCache,
    items: Sequence[EventIn],
    *,
    now: datetime,
    doorbell: Doorbell | None = None,
) -> list[IngestResult]:
    """Store events and let flows react, a stage at a time (see the module docstring).

    Returns one result per item, in order.
    """
    if not items:
        return []
    batch = _Batch(items, now)
    await _insert(session, batch)
    return await _finish(session, versions, batch, doorbell)


async def _finish(
    session: AsyncSession, versions: VersionCache, batch: _Batch, doorbell: Doorbell | None
) -> list[IngestResult]:
    """The stages after the insert: enroll, wake, reach goals, ring; the results."""
    if batch.stored:
        await _react(session, versions, batch)
    if batch.enrolled or batch.woken or batch.goals:
        ring_after_commit(session, doorbell)
    return batch.results()


@dataclass(frozen=True)
class NamedEventIn:
    """An event for a contact named by external id (when given) or email, not by id."""

    type: str
    external_id: str | None
    email: str | None
    properties: Mapping[str, Any] = field(default_factory=dict)
    dedupe_key: str | None = None
    occurred_at: datetime | None = None
    source: str = "api"


@dataclass(frozen=True)
class Unresolved:
    """``ingest_named`` stored nothing: a contact was not found. The contacts that were, as
    (id, external_id, email), looked up by every external id and email of the items."""

    found: list[tuple[int, str | None, str | None]]


# PostgreSQL: the contact look-up and the event insert of ``ingest_named`` in one
# statement. Every item's contact is looked up (by external id when it has one, else
# by email); only when all are found are the events inserted, in the order of the
# items (``at``), and the answers of ``_EVENTS_TAIL`` come back with them. Otherwise
# nothing is written and the contacts found by any of the names come back instead.
_NAMED = text(
    "WITH r AS (SELECT e, at FROM jsonb_array_elements(CAST(:rows AS JSONB)) "
    "WITH ORDINALITY AS r(e, at)), "
    "named AS (SELECT r.e, r.at, CASE WHEN r.e->>1 IS NOT NULL THEN cx.id ELSE cm.id END "
    "AS contact_id FROM r "
    "LEFT JOIN contacts cx ON cx.external_id = r.e->>1 "
    "LEFT JOIN contacts cm ON r.e->>1 IS NULL AND cm.email = r.e->>2), "
    "go AS (SELECT bool_and(contact_id IS NOT NULL) AS ok FROM named), "
    "stored AS (INSERT INTO events (type, contact_id, properties, source, dedupe_key, "
    "occurred_at, received_at, claimed) "
    "SELECT CAST(e->>0 AS TEXT), contact_id, e->3, CAST(e->>4 AS TEXT), CAST(e->>5 AS TEXT), "
    "CAST(e->>6 AS TIMESTAMP WITH TIME ZONE), CAST(e->>7 AS TIMESTAMP WITH TIME ZONE), FALSE "
    "FROM named WHERE CAST(e->>8 AS BOOLEAN) AND (SELECT ok FROM go) ORDER BY at "
    "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key), "
    "found AS (SELECT id, external_id, email FROM contacts "
    "WHERE external_id = ANY(CAST(:external_ids AS TEXT[])) "
    "OR email = ANY(CAST(:emails AS TEXT[]))) "
    "SELECT (SELECT ok FROM go) AS ok, "
    "(SELECT array_agg(contact_id ORDER BY at) FROM named) AS contacts, "
    "(SELECT array_agg(id ORDER BY id) FROM stored) AS stored_ids, "
    "(SELECT array_agg(dedupe_key ORDER BY id) FROM stored) AS stored_keys, "
    "(SELECT array_agg(published_version_id) FROM flows "
    "WHERE status = :active_flow AND published_version_id IS NOT NULL) AS enrolling, "
    "EXISTS (SELECT 1 FROM journeys WHERE contact_id IN "
    "(SELECT contact_id FROM named WHERE CAST(e->>8 AS BOOLEAN)) "
    "AND status IN ('active', 'waiting')) AS any_live, "
    "CASE WHEN (SELECT ok FROM go) THEN NULL ELSE "
    "(SELECT array_agg(id ORDER BY id) FROM found) END AS found_ids, "
    "CASE WHEN (SELECT ok FROM go) THEN NULL ELSE "
    "(SELECT array_agg(external_id ORDER BY id) FROM found) END AS found_external_ids, "
    "CASE WHEN (SELECT ok FROM go) THEN NULL ELSE "
    "(SELECT array_agg(email ORDER BY id) FROM found) END AS found_emails"
)


@dataclass(frozen=True)
class _Returned:
    id: int
    dedupe_key: str | None


def _encode_other(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else str(value)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def ingest_named(
    session: AsyncSession,
    versions: VersionCache,
    items: Sequence[NamedEventIn],
    *,
    now: datetime,
    doorbell: Doorbell | None = None,
) -> list[IngestResult] | Unresolved:
    """``ingest_many`` for events whose contacts are named, with the look-up folded into the
    insert (PostgreSQL only): one statement instead of two when every contact exists.

    When one does not, nothing is written and ``Unresolved`` says which contacts
    were found, for the caller to create the others and call ``ingest_many``.
    """
    if not items:
        return []
    first_by_key: dict[str, int] = {}
    first_of = [
        first_by_key.setdefault(item.dedupe_key, index) if item.dedupe_key is not None else index
        for index, item in enumerate(items)
    ]
    rows = [
        (
            item.type,
            item.external_id or None,
            item.email,
            dict(item.properties),
            item.source,
            item.dedupe_key,
            _utc(item.occurred_at or now),
            _utc(now),
            first_of[index] == index,
        )
        for index, item in enumerate(items)
    ]
    params = {
        "rows": msgspec.json.encode(rows, enc_hook=_encode_other).decode(),
        "external_ids": sorted({item.external_id for item in items if item.external_id}),
        "emails": sorted({item.email for item in items if item.email}),
        "active_flow": FlowStatus.active.value,
    }
    answer = (await session.execute(_NAMED, params)).one()
    if not answer.ok:
        return Unresolved(
            list(
                zip(
                    answer.found_ids or [],
                    answer.found_external_ids or [],
                    answer.found_emails or [],
                    strict=True,
                )
            )
        )
    events = [
        EventIn(
            type=item.type,
            contact_id=contact_id,
            properties=item.properties,
            dedupe_key=item.dedupe_key,
            occurred_at=item.occurred_at,
            source=item.source,
        )
        for item, contact_id in zip(items, answer.contacts, strict=True)
    ]
    batch = _Batch(events, now)
    batch.first_of = first_of
    batch.enrolling = set(answer.enrolling or ())
    batch.any_live = answer.any_live
    returned = [
        _Returned(id, key)
        for id, key in zip(answer.stored_ids or [], answer.stored_keys or [], strict=True)
    ]
    await _take_ids(session, batch, [i for i in range(len(items)) if first_of[i] == i], returned)
    return await _finish(session, versions, batch, doorbell)


async def _insert(session: AsyncSession, batch: _Batch) -> None:
    """Append the batch's new events in one statement; find the stored ids of duplicates."""
    fresh = _fresh(batch)
    if dialect_name(session) == "postgresql":
        returned = await _insert_json(session, batch, fresh)
        if returned:
            batch.enrolling = set(returned[0].enrolling or ())
            batch.any_live = returned[0].any_live
    else:
        returned = await _insert_values(session, batch, fresh)
    await _take_ids(session, batch, fresh, returned)


def _fresh(batch: _Batch) -> list[int]:
    """Each item's first item with its dedupe key (``first_of``); the indexes of the firsts."""
    first_by_key: dict[str, int] = {}
    for index, item in enumerate(batch.items):
        key = item.dedupe_key
        batch.first_of.append(first_by_key.setdefault(key, index) if key is not None else index)
    return [i for i in range(len(batch.items)) if batch.first_of[i] == i]


async def _take_ids(
    session: AsyncSession, batch: _Batch, fresh: list[int], returned: Sequence[Any]
) -> None:
    """The stored items and every item's event id, from the insert's (id, dedupe_key) rows."""
    inserted_keys = {row.dedupe_key for row in returned if row.dedupe_key is not None}
    batch.stored = [
        i
        for i in fresh
        if batch.items[i].dedupe_key is None or batch.items[i].dedupe_key in inserted_keys
    ]
    # One statement assigns ids in the order of its rows (both databases take
    # them from an increasing counter, row by row), so sorted ids line up
    # with the stored items; RETURNING itself promises no order.
    ids: dict[int, int] = dict(zip(batch.stored, sorted(row.id for row in returned), strict=True))
    missing = {batch.items[i].dedupe_key for i in fresh if i not in ids}
    if missing:
        found = await session.execute(
            select(EVENTS.c.dedupe_key, EVENTS.c.id).where(
                among(session, EVENTS.c.dedupe_key, missing)
            )
        )
        by_key = {row.dedupe_key: row.id for row in found}
        for i in fresh:
            if i not in ids:
                ids[i] = by_key[batch.items[i].dedupe_key]
    batch.event_ids = [ids[batch.first_of[i]] for i in range(len(batch.items))]


async def _insert_values(session: AsyncSession, batch: _Batch, fresh: list[int]) -> list[Any]:
    """SQLite: one multi-row ``INSERT`` (SQLAlchemy pages the rows as ``VALUES``, in order)."""
    rows = [
        {
            "type": batch.items[i].type,
            "contact_id": batch.items[i].contact_id,
            "visitor_id": batch.items[i].visitor_id,
            "properties": dict(batch.items[i].properties),
            "source": batch.items[i].source,
            "dedupe_key": batch.items[i].dedupe_key,
            "occurred_at": batch.items[i].occurred_at or batch.now,
            "received_at": batch.now,
            "claimed": batch.items[i].claimed,
        }
        for i in fresh
    ]
    stmt = (
        upsert_insert(session, EVENTS)
        .on_conflict_do_nothing(index_elements=[EVENTS.c.dedupe_key])
        .returning(EVENTS.c.id, EVENTS.c.dedupe_key)
    )
    return list((await session.execute(stmt, rows)).all())


# Two answers come back with the insert, each a round trip fewer per batch and
# never stale (no cache to invalidate): the flows that may enroll, and whether
# any of the batch's customers has a live journey at all. Most events are for
# customers in no journey; for them the journeys are not read (``_react``).
# (The statuses are written out, as LIVE_STATUSES, so the planner matches the partial indexes.)
_EVENTS_TAIL = (
    "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key, "
    "(SELECT array_agg(published_version_id) FROM flows "
    "WHERE status = :active_flow AND published_version_id IS NOT NULL) AS enrolling, "
    "(EXISTS (SELECT 1 FROM journeys WHERE contact_id = ANY(CAST(:contacts AS BIGINT[])) "
    "AND status IN ('active', 'waiting')) OR EXISTS (SELECT 1 FROM journeys "
    "WHERE visitor_id = ANY(CAST(:visitors AS TEXT[])) AND status IN ('active', 'waiting'))) "
    "AS any_live"
)
assert set(LIVE_STATUSES) == {"active", "waiting"}, "the live statuses are written out above"


async def _insert_json(session: AsyncSession, batch: _Batch, fresh: list[int]) -> list[Any]:
    """PostgreSQL: the rows as one JSON parameter (``runtime.bulk_insert``)."""
    items = [batch.items[i] for i in fresh]
    now = batch.now
    columns: dict[str, Sequence[Any]] = {
        "type": [item.type for item in items],
        "contact_id": [item.contact_id for item in items],
        "visitor_id": [item.visitor_id for item in items],
        "properties": [item.properties for item in items],
        "source": [item.source for item in items],
        "dedupe_key": [item.dedupe_key for item in items],
        "occurred_at": [item.occurred_at or now for item in items],
        "received_at": [now] * len(items),
        "claimed": [item.claimed for item in items],
    }
    params = {
        "active_flow": FlowStatus.active.value,
        "contacts": sorted({i.contact_id for i in items if i.contact_id is not None}),
        "visitors": sorted({i.visitor_id for i in items if i.contact_id is None and i.visitor_id}),
    }
    return list((await insert_rows(session, EVENTS, columns, _EVENTS_TAIL, params)).all())


@dataclass
class _Live:
    """A live journey of a customer in the batch, as the items see it in turn."""

    id: int
    flow_version_id: int
    node_id: str
    visits: dict[str, int]
    status: str
    wait_event_type: str | None
    wait_match: dict[str, Any] | None
    waiting_since: datetime | None
    since_item: int = -1  # the item that enrolled it (-1: it was there before the batch)


async def _react(session: AsyncSession, versions: VersionCache, batch: _Batch) -> None:
    types = {batch.items[i].type for i in batch.stored}
    active = batch.enrolling
    if active is None:
        rows = await session.execute(select(FLOWS.c.published_version_id).where(*_ENROLLING))
        active = set(rows.scalars())
    flows = await versions.get_many(session, active) if active else {}
    live = await _load_live(session, batch, types) if batch.any_live else {}
    triggers = sorted(
        (
            (flow, trigger)
            for flow in flows.values()
            for trigger in flow.triggers
            if trigger.trigger is not None and trigger.trigger.event_type in types
        ),
        key=lambda pair: (pair[0].flow_id, pair[1].id),
    )
    if triggers:
        await _enroll(session, batch, triggers, live)
    await _wake_and_reach_goals(session, versions, batch, live)


def _owners(session: AsyncSession, batch: _Batch) -> Any:
    items = [batch.items[i] for i in batch.stored]
    contacts = {item.contact_id for item in items if item.contact_id is not None}
    visitors = {item.visitor_id for item in items if item.contact_id is None}
    owners = []
    if contacts:
        owners.append(among(session, JOURNEYS.c.contact_id, contacts))
    if visitors:
        owners.append(among(session, JOURNEYS.c.visitor_id, visitors))
    return or_(*owners)


async def _load_live(
    session: AsyncSession, batch: _Batch, types: set[str]
) -> dict[CustomerKey, list[_Live]]:
    """The batch's customers' live journeys (for goals) with their waits (for wake-ups).

    One query: the customer indexes find every live journey of the batch's
    customers, and the waits for these event types are among them.
    """
    rows = await session.execute(
        select(
            JOURNEYS.c.id,
            JOURNEYS.c.contact_id,
            JOURNEYS.c.visitor_id,
            JOURNEYS.c.flow_version_id,
            JOURNEYS.c.node_id,
            JOURNEYS.c.visits,
            JOURNEYS.c.status,
            JOURNEYS.c.wait_event_type,
            JOURNEYS.c.wait_match,
            JOURNEYS.c.waiting_since,
        )
        .where(_owners(session, batch), JOURNEYS.c.status.in_(LIVE_STATUSES))
        .order_by(JOURNEYS.c.id)
    )
    live: dict[CustomerKey, list[_Live]] = {}
    for row in rows:
        waits = row.status == JourneyStatus.waiting.value and row.wait_event_type in types
        live.setdefault(customer_key(row.contact_id, row.visitor_id), []).append(
            _Live(
                id=row.id,
                flow_version_id=row.flow_version_id,
                node_id=row.node_id,
                visits=dict(row.visits or {}),
                status=row.status,
                wait_event_type=row.wait_event_type if waits else None,
                wait_match=row.wait_match if waits else None,
                waiting_since=row.waiting_since if waits else None,
            )
        )
    return live


async def _enroll(
    session: AsyncSession,
    batch: _Batch,
    triggers: list[tuple[CompiledFlow, Any]],
    live: dict[CustomerKey, list[_Live]],
) -> None:
    """Enroll each customer in the flows its events start: one INSERT for the batch."""
    customers = [batch.items[i] for i in batch.stored]
    profiles = await load_profiles(
        session,
        [c.contact_id for c in customers if c.contact_id is not None],
        [c.visitor_id for c in customers if c.contact_id is None and c.visitor_id is not None],
    )
    wanted: dict[str, tuple[int, CompiledFlow, str]] = {}  # entry key -> (item, flow, node)
    for index in batch.stored:
        item = batch.items[index]
        profile = profiles.get(item.customer)
        if profile is None:
            continue
        record = batch.record(index)
        for flow, trigger in triggers:
            if trigger.trigger.event_type != item.type or not trigger.accepts(record, profile):
                continue
            key = entry_key(flow.flow_id, item.contact_id, item.visitor_id)
            # The first event wins: the journey it starts blocks the later ones.
            wanted.setdefault(key, (index, flow, trigger.id))
    if not wanted:
        return
    blocked = await _blocked_by_earlier(session, batch.now, wanted.values(), batch.items)
    rows = []
    for key, (index, flow, node_id) in wanted.items():
        item = batch.items[index]
        if (flow.flow_id, item.customer) in blocked:
            continue
        record = batch.record(index)
        data = {
            "trigger": {"event_id": record.id, "type": record.type, "properties": record.properties}
        }
        row = new_journey(flow, node_id, data, batch.now)
        row.update(contact_id=item.contact_id, visitor_id=item.visitor_id, entry_key=key)
        rows.append(row)
    if not rows:
        return
    created = await session.execute(
        upsert_insert(session, JOURNEYS)
        .on_conflict_do_nothing(index_elements=[JOURNEYS.c.entry_key])
        .returning(JOURNEYS.c.id, JOURNEYS.c.entry_key),
        rows,
    )
    for journey_id, key in sorted(created.all()):
        index, flow, node_id = wanted[key]
        batch.enrolled.setdefault(index, []).append(journey_id)
        live.setdefault(batch.items[index].customer, []).append(
            _Live(
                id=journey_id,
                flow_version_id=flow.version_id,
                node_id=node_id,
                visits={node_id: 1},
                status=JourneyStatus.active.value,
                wait_event_type=None,
                wait_match=None,
                waiting_since=None,
                since_item=index,
            )
        )
    for journeys in batch.enrolled.values():
        journeys.sort()


async def _blocked_by_earlier(
    session: AsyncSession,
    now: datetime,
    wanted: Any,
    items: Sequence[EventIn],
) -> set[tuple[int, CustomerKey]]:
    """(flow, customer) pairs whose re-entry policy refuses a new journey, in one query."""
    since: dict[int, datetime | None] = {}  # flow id -> journeys entered after this block
    contacts: set[int] = set()
    visitors: set[str] = set()
    for index, flow, _node in wanted:
        if flow.settings.reentry == "once":
            since[flow.flow_id] = None
        elif flow.settings.reentry == "after_days":
            since[flow.flow_id] = now - timedelta(days=flow.settings.reentry_days or 0)
        else:
            continue
        item = items[index]
        if item.contact_id is not None:
            contacts.add(item.contact_id)
        elif item.visitor_id is not None:
            visitors.add(item.visitor_id)
    if not since:
        return set()
    owners = []
    if contacts:
        owners.append(among(session, JOURNEYS.c.contact_id, contacts))
    if visitors:
        owners.append(among(session, JOURNEYS.c.visitor_id, visitors))
    rows = await session.execute(
        select(
            JOURNEYS.c.flow_id,
            JOURNEYS.c.contact_id,
            JOURNEYS.c.visitor_id,
            JOURNEYS.c.entered_at,
        ).where(among(session, JOURNEYS.c.flow_id, since), or_(*owners))
    )
    blocked: set[tuple[int, CustomerKey]] = set()
    for row in rows:
        after = since[row.flow_id]
        if after is None or row.entered_at > after:
            blocked.add((row.flow_id, customer_key(row.contact_id, row.visitor_id)))
    return blocked


async def _wake_and_reach_goals(
    session: AsyncSession,
    versions: VersionCache,
    batch: _Batch,
    live: dict[CustomerKey, list[_Live]],
) -> None:
    """Decide, item by item, which waits end and which goals are met; then write it."""
    if not live:
        return
    flows = await versions.get_many(
        session, {j.flow_version_id for journeys in live.values() for j in journeys}
    )
    wakes: dict[int, tuple[int, _Live]] = {}  # journey id -> (waking item, journey as read)
    goal_moves: list[tuple[int, _Live, str, dict[str, int]]] = []
    profiles: dict[CustomerKey, Profile] | None = None
    for index in batch.stored:
        item = batch.items[index]
        journeys = live.get(item.customer, ())
        for journey in journeys:
            if journey.since_item > index:
                continue
            if (
                journey.status == JourneyStatus.waiting.value
                and journey.wait_event_type == item.type
                and journey.id not in wakes
                and matches(journey.wait_match, item.properties)
            ):
                # The first matching event ends the wait.
                wakes[journey.id] = (index, _Live(**vars(journey)))
                journey.wait_event_type = None
                batch.woken.setdefault(index, []).append(journey.id)
        for journey in journeys:
            if journey.since_item > index:
                continue
            flow = flows[journey.flow_version_id]
            if "goal_reached" not in flow.settings.exit_on:
                continue
            for goal in flow.goals:
                assert goal.trigger is not None and goal.config is not None
                if goal.trigger.event_type != item.type or journey.node_id == goal.id:
                    continue
                if profiles is None:
                    profiles = await _batch_profiles(session, batch)
                profile = profiles.get(item.customer)
                if profile is None or not goal.accepts(batch.record(index), profile):
                    continue
                journey.visits[goal.id] = journey.visits.get(goal.id, 0) + 1
                journey.node_id = goal.id
                journey.status = JourneyStatus.active.value
                journey.wait_event_type = None
                goal_moves.append((index, journey, goal.id, dict(journey.visits)))
                batch.goals.setdefault(index, []).append(journey.id)
                break
    if wakes:
        await _write_wakes(session, batch, wakes)
    for index, journey, goal_id, visits in goal_moves:
        await _write_goal(session, batch, index, journey.id, goal_id, visits)


async def _batch_profiles(session: AsyncSession, batch: _Batch) -> dict[CustomerKey, Profile]:
    customers = [batch.items[i] for i in batch.stored]
    return await load_profiles(
        session,
        [c.contact_id for c in customers if c.contact_id is not None],
        [c.visitor_id for c in customers if c.contact_id is None and c.visitor_id is not None],
    )


async def _write_wakes(
    session: AsyncSession, batch: _Batch, wakes: dict[int, tuple[int, _Live]]
) -> None:
    """One UPDATE for every wait the batch ends, each guarded by the wait it read.

    Deleting the lease (after the journey rows, the order claims use) makes a
    worker that is stepping such a journey right now drop its (stale) result.
    A journey whose wait changed since it was read (a worker moved it on) is
    left alone and not reported as woken.
    """
    ids = list(wakes)

    def per_journey(values: dict[int, Any], column: Any) -> Any:
        return case(
            {jid: literal(value, type_=column.type) for jid, value in values.items()},
            value=JOURNEYS.c.id,
        )

    event_ids = {jid: batch.event_ids[index] for jid, (index, _j) in wakes.items()}
    types = {jid: journey.wait_event_type for jid, (_i, journey) in wakes.items()}
    since = {jid: journey.waiting_since for jid, (_i, journey) in wakes.items()}
    result = await session.execute(
        update(JOURNEYS)
        .where(
            among(session, JOURNEYS.c.id, ids),
            JOURNEYS.c.status == JourneyStatus.waiting.value,
            JOURNEYS.c.wait_event_type == per_journey(types, JOURNEYS.c.wait_event_type),
            JOURNEYS.c.waiting_since == per_journey(since, JOURNEYS.c.waiting_since),
        )
        .values(
            due_at=batch.now,
            wake_event_id=per_journey(event_ids, JOURNEYS.c.wake_event_id),
            wait_event_type=None,
            lease_owner=None,
            lease_until=None,
            updated_at=batch.now,
        )
        .returning(JOURNEYS.c.id)
    )
    done = set(result.scalars())
    if done:
        await drop_leases(session, list(done))
    for index in list(batch.woken):
        kept = [jid for jid in batch.woken[index] if jid in done]
        if kept:
            batch.woken[index] = kept
        else:
            del batch.woken[index]


async def _write_goal(
    session: AsyncSession,
    batch: _Batch,
    index: int,
    journey_id: int,
    goal_id: str,
    visits: dict[str, int],
) -> None:
    """Move a live journey onto its goal node; it runs the goal next, which ends it.

    Goals are rare next to events, so each move is its own statement.
    """
    moved = await move_onto_goal(
        session, journey_id, goal_id, visits, batch.now, wake_event_id=batch.event_ids[index]
    )
    if not moved:
        batch.goals[index].remove(journey_id)
        if not batch.goals[index]:
            del batch.goals[index]


async def move_onto_goal(
    session: AsyncSession,
    journey_id: int,
    goal_id: str,
    visits: dict[str, int],
    now: datetime,
    *,
    wake_event_id: int | None = None,
) -> bool:
    """Move a live journey onto a goal node, due now, closing its open step; False when it
    is no longer live. Goals are rare next to steps, so each move is its own statement."""
    this = select(JOURNEYS.c.id).where(JOURNEYS.c.id == journey_id)
    await close_open_steps(session, this, "goal_reached", now)
    result = await session.execute(
        update(JOURNEYS)
        .where(JOURNEYS.c.id == journey_id, JOURNEYS.c.status.in_(LIVE_STATUSES))
        .values(
            status=JourneyStatus.active.value,
            node_id=goal_id,
            visits=visits,
            due_at=now,
            wake_event_id=wake_event_id,
            wait_event_type=None,
            wait_match=None,
            waiting_since=None,
            attempts=0,
            lease_owner=None,
            lease_until=None,
            updated_at=now,
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    await drop_leases(session, [journey_id])  # a walk in flight drops its result
    return True
