"""Customers as node code sees them: bulk loading of profiles and recent events."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from nodes.sdk import EVENT_HISTORY_DAYS, EventRecord, Profile
from runtime.sql import CONTACTS, EVENTS, VISITORS, among

CustomerKey = tuple[str, str]  # ("contact", "42") or ("visitor", "abc")

# How much history a node that reads events gets: enough for engagement and
# "did X in the last N days" checks without loading a customer's whole life.
EVENT_HISTORY_LIMIT = 200

_CONTACT_COLUMNS = (
    CONTACTS.c.id,
    CONTACTS.c.email,
    CONTACTS.c.phone,
    CONTACTS.c.first_name,
    CONTACTS.c.last_name,
    CONTACTS.c.attributes,
    CONTACTS.c.tags,
    CONTACTS.c.lifecycle_stage,
    CONTACTS.c.timezone,
    CONTACTS.c.consent,
    CONTACTS.c.owner_id,
)


def customer_key(contact_id: int | None, visitor_id: str | None) -> CustomerKey:
    if contact_id is not None:
        return ("contact", str(contact_id))
    return ("visitor", str(visitor_id))


def contact_profile(row: Any) -> Profile:
    return Profile(
        kind="contact",
        id=str(row.id),
        email=row.email,
        phone=row.phone,
        first_name=row.first_name,
        last_name=row.last_name,
        attributes=row.attributes or {},
        tags=tuple(row.tags or ()),
        lifecycle_stage=row.lifecycle_stage,
        timezone=row.timezone,
        consent=row.consent or {},
        owner_id=row.owner_id,
    )


_PROFILE_FIELDS = (
    "kind id email phone first_name last_name attributes tags lifecycle_stage timezone consent "
    "owner_id"
)
if [f.name for f in fields(Profile)] != _PROFILE_FIELDS.split():  # pragma: no cover
    raise TypeError(f"claimed_profile builds Profile with the fields {_PROFILE_FIELDS!r}")


def claimed_profile(row: Any) -> Profile | None:
    """The profile in a row of ``runtime.claims.claim_with_customers`` (None: no customer)."""
    if row.c_id is not None:
        # What ``Profile(...)`` makes, without its frozen ``__init__``'s twelve
        # ``object.__setattr__`` calls: a claim makes one per journey, from database values.
        made = object.__new__(Profile)
        object.__setattr__(
            made,
            "__dict__",
            {
                "kind": "contact",
                "id": str(row.c_id),
                "email": row.c_email,
                "phone": row.c_phone,
                "first_name": row.c_first_name,
                "last_name": row.c_last_name,
                "attributes": row.c_attributes or {},
                "tags": tuple(row.c_tags or ()),
                "lifecycle_stage": row.c_lifecycle_stage,
                "timezone": row.c_timezone,
                "consent": row.c_consent or {},
                "owner_id": row.c_owner_id,
            },
        )
        return made
    if row.v_id is not None:
        return Profile(kind="visitor", id=row.v_id, attributes=row.v_traits or {})
    return None


def claimed_wake_event(row: Any) -> EventRecord | None:
    """The wake-up event in a row of ``runtime.claims.claim_with_customers``, if any."""
    if row.e_id is None:
        return None
    return EventRecord(
        type=row.e_type,
        occurred_at=row.e_occurred_at,
        properties=row.e_properties or {},
        id=row.e_id,
        source=row.e_source,
    )


async def load_profiles(
    session: AsyncSession, contact_ids: Iterable[int], visitor_ids: Iterable[str]
) -> dict[CustomerKey, Profile]:
    """Profiles for many customers in at most two queries."""
    profiles: dict[CustomerKey, Profile] = {}
    contact_set, visitor_set = set(contact_ids), set(visitor_ids)
    if contact_set:
        rows = await session.execute(
            select(*_CONTACT_COLUMNS).where(among(session, CONTACTS.c.id, contact_set))
        )
        for row in rows:
            profiles[("contact", str(row.id))] = contact_profile(row)
    if visitor_set:
        rows = await session.execute(
            select(VISITORS.c.id, VISITORS.c.traits).where(
                among(session, VISITORS.c.id, visitor_set)
            )
        )
        for row in rows:
            profiles[("visitor", row.id)] = Profile(
                kind="visitor", id=row.id, attributes=row.traits or {}
            )
    return profiles


def event_record(row: Any) -> EventRecord:
    return EventRecord(
        type=row.type,
        occurred_at=row.occurred_at,
        properties=row.properties or {},
        id=row.id,
        source=row.source,
    )


async def load_events(session: AsyncSession, ids: Iterable[int]) -> dict[int, EventRecord]:
    id_set = set(ids)
    if not id_set:
        return {}
    rows = await session.execute(
        select(
            EVENTS.c.id,
            EVENTS.c.type,
            EVENTS.c.occurred_at,
            EVENTS.c.properties,
            EVENTS.c.source,
        ).where(among(session, EVENTS.c.id, id_set))
    )
    return {row.id: event_record(row) for row in rows}


async def load_recent_events(
    session: AsyncSession, keys: Iterable[CustomerKey], now: datetime
) -> dict[CustomerKey, tuple[EventRecord, ...]]:
    """Each customer's recent events, oldest first, capped per customer, in one query each kind."""
    wanted = list(keys)
    by_kind: dict[str, set[str]] = defaultdict(set)
    for kind, ident in wanted:
        by_kind[kind].add(ident)
    history: dict[CustomerKey, list[EventRecord]] = defaultdict(list)
    since = now - timedelta(days=EVENT_HISTORY_DAYS)
    for kind, idents in by_kind.items():
        owner = EVENTS.c.contact_id if kind == "contact" else EVENTS.c.visitor_id
        values: list[Any] = [int(i) for i in idents] if kind == "contact" else list(idents)
        # A contact's history holds what is proven; a claim stays its visitor's until then.
        unverified = [EVENTS.c.claimed.is_(False)] if kind == "contact" else []
        ranked = (
            select(
                owner.label("owner"),
                EVENTS.c.id,
                EVENTS.c.type,
                EVENTS.c.occurred_at,
                EVENTS.c.properties,
                EVENTS.c.source,
                func.row_number()
                .over(partition_by=owner, order_by=EVENTS.c.occurred_at.desc())
                .label("rank"),
            )
            .where(owner.in_(values), EVENTS.c.occurred_at >= since, *unverified)
            .subquery()
        )
        rows = await session.execute(
            select(ranked)
            .where(ranked.c.rank <= EVENT_HISTORY_LIMIT)
            .order_by(ranked.c.occurred_at, ranked.c.id)
        )
        for row in rows:
            history[(kind, str(row.owner))].append(event_record(row))
    return {key: tuple(history.get(key, ())) for key in wanted}
