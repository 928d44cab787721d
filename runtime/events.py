"""Event ingestion: append the fact, enroll matching flows, wake waiting journeys.

``ingest`` runs inside the caller's transaction. It is idempotent on
``dedupe_key``: a duplicate returns the stored event and does nothing else.
Waking uses the ``(wait_event_type, contact_id|visitor_id)`` partial indexes
and makes matching journeys due now; the doorbell rings after commit so a
worker steps them at once rather than on the next sweep.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nodes.sdk import EventRecord, Profile
from runtime.doorbell import Doorbell, ring_after_commit
from runtime.enroll import enroll_customer
from runtime.models import FlowStatus, JourneyStatus
from runtime.models.journeys import LIVE_STATUSES
from runtime.profiles import customer_key, load_profiles
from runtime.sql import EVENTS, FLOWS, JOURNEYS, close_open_steps, dialect_name, upsert_insert
from runtime.versions import VersionCache

__all__ = ["IngestResult", "ingest", "matches"]


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
    """Store an event for a customer and let flows react to it (see the module docstring)."""
    if contact_id is None and visitor_id is None:
        raise ValueError("an event belongs to a contact or a visitor")
    props = dict(properties or {})
    inserted = await _insert(
        session,
        type=type,
        contact_id=contact_id,
        visitor_id=visitor_id,
        properties=props,
        source=source,
        dedupe_key=dedupe_key,
        occurred_at=occurred_at or now,
        received_at=now,
    )
    if inserted is None:
        existing = await session.scalar(
            select(EVENTS.c.id).where(EVENTS.c.dedupe_key == dedupe_key)
        )
        assert existing is not None
        return IngestResult(event_id=existing, duplicate=True)
    event_id, enrolling = inserted

    record = EventRecord(
        type=type, occurred_at=occurred_at or now, properties=props, id=event_id, source=source
    )
    enrolled = await _enroll(session, versions, enrolling, record, contact_id, visitor_id, now)
    woken = await _wake(session, record, contact_id, visitor_id, now)
    goals = await _reach_goals(session, versions, record, contact_id, visitor_id, now)
    if enrolled or woken or goals:
        ring_after_commit(session, doorbell)
    return IngestResult(event_id=event_id, enrolled=enrolled, woken=woken, goals=goals)


async def _insert(session: AsyncSession, **values: Any) -> tuple[int, set[int]] | None:
    """Append the event; returns its id and the published versions of active flows.

    None when an event with the same ``dedupe_key`` is already stored.
    """
    stmt = upsert_insert(session, EVENTS).values(**values)
    stmt = stmt.on_conflict_do_nothing(index_elements=[EVENTS.c.dedupe_key])
    if dialect_name(session) != "postgresql":
        event_id = await session.scalar(stmt.returning(EVENTS.c.id))
        if event_id is None:
            return None
        rows = await session.execute(select(FLOWS.c.published_version_id).where(*_ENROLLING))
        return event_id, set(rows.scalars())
    # The flows that may enroll come back with the insert: one round trip fewer
    # per event, and never a stale answer (no cache to invalidate on publish).
    enrolling = select(func.array_agg(FLOWS.c.published_version_id)).where(*_ENROLLING)
    row = (await session.execute(stmt.returning(EVENTS.c.id, enrolling.scalar_subquery()))).first()
    if row is None:
        return None
    return row[0], set(row[1] or ())


async def _profile(
    session: AsyncSession, contact_id: int | None, visitor_id: str | None
) -> Profile | None:
    profiles = await load_profiles(
        session,
        [contact_id] if contact_id is not None else [],
        [visitor_id] if contact_id is None and visitor_id is not None else [],
    )
    return profiles.get(customer_key(contact_id, visitor_id))


async def _enroll(
    session: AsyncSession,
    versions: VersionCache,
    version_ids: set[int],
    record: EventRecord,
    contact_id: int | None,
    visitor_id: str | None,
    now: datetime,
) -> tuple[int, ...]:
    """Enroll the customer in the flows (published versions ``version_ids``) this event starts."""
    flows = await versions.get_many(session, version_ids)
    candidates = [
        (flow, trigger)
        for flow in flows.values()
        for trigger in flow.triggers
        if trigger.trigger is not None and trigger.trigger.event_type == record.type
    ]
    if not candidates:
        return ()
    profile = await _profile(session, contact_id, visitor_id)
    if profile is None:
        return ()
    # A contact's events enroll the contact, even when a stitched visitor sent them.
    who: dict[str, Any] = (
        {"contact_id": contact_id} if contact_id is not None else {"visitor_id": visitor_id}
    )
    data = {
        "trigger": {"event_id": record.id, "type": record.type, "properties": record.properties}
    }
    enrolled: list[int] = []
    for flow, trigger in sorted(candidates, key=lambda c: (c[0].flow_id, c[1].id)):
        assert trigger.config is not None
        if not trigger.accepts(record, profile):
            continue
        new_id = await enroll_customer(session, flow, trigger.id, data=data, now=now, **who)
        if new_id is not None:
            enrolled.append(new_id)
    return tuple(enrolled)


def _owner(contact_id: int | None, visitor_id: str | None) -> Any:
    if contact_id is not None:
        return JOURNEYS.c.contact_id == contact_id
    return JOURNEYS.c.visitor_id == visitor_id


async def _wake(
    session: AsyncSession,
    record: EventRecord,
    contact_id: int | None,
    visitor_id: str | None,
    now: datetime,
) -> tuple[int, ...]:
    waiting = await session.execute(
        select(JOURNEYS.c.id, JOURNEYS.c.wait_match, JOURNEYS.c.waiting_since).where(
            JOURNEYS.c.wait_event_type == record.type,
            _owner(contact_id, visitor_id),
            JOURNEYS.c.status == JourneyStatus.waiting.value,
        )
    )
    woken: list[int] = []
    for journey_id, wait_match, waiting_since in waiting:
        if not matches(wait_match, record.properties):
            continue
        # The first matching event ends the wait; clearing the lease makes a
        # worker that is stepping this journey right now drop its (stale) result.
        result = await session.execute(
            update(JOURNEYS)
            .where(
                JOURNEYS.c.id == journey_id,
                JOURNEYS.c.status == JourneyStatus.waiting.value,
                JOURNEYS.c.wait_event_type == record.type,
                JOURNEYS.c.waiting_since == waiting_since,
            )
            .values(
                due_at=now,
                wake_event_id=record.id,
                wait_event_type=None,
                lease_owner=None,
                lease_until=None,
                updated_at=now,
            )
        )
        if result.rowcount:  # type: ignore[attr-defined]
            woken.append(journey_id)
    return tuple(woken)


async def _reach_goals(
    session: AsyncSession,
    versions: VersionCache,
    record: EventRecord,
    contact_id: int | None,
    visitor_id: str | None,
    now: datetime,
) -> tuple[int, ...]:
    """Move live journeys whose flow has a goal met by this event onto that goal node.

    A goal node declares its event through ``trigger()``; the journey then runs
    the goal node next, which ends it (and records the conversion).
    """
    live = (
        await session.execute(
            select(
                JOURNEYS.c.id, JOURNEYS.c.flow_version_id, JOURNEYS.c.node_id, JOURNEYS.c.visits
            ).where(_owner(contact_id, visitor_id), JOURNEYS.c.status.in_(LIVE_STATUSES))
        )
    ).all()
    if not live:
        return ()
    flows = await versions.get_many(session, {row.flow_version_id for row in live})
    profile: Profile | None = None
    moved: list[int] = []
    for row in live:
        flow = flows[row.flow_version_id]
        if "goal_reached" not in flow.settings.exit_on:
            continue
        for goal in flow.goals:
            assert goal.trigger is not None and goal.config is not None
            if goal.trigger.event_type != record.type or row.node_id == goal.id:
                continue
            profile = profile or await _profile(session, contact_id, visitor_id)
            if profile is None or not goal.accepts(record, profile):
                continue
            visits = dict(row.visits or {})
            visits[goal.id] = visits.get(goal.id, 0) + 1
            this = select(JOURNEYS.c.id).where(JOURNEYS.c.id == row.id)
            await close_open_steps(session, this, "goal_reached", now)
            result = await session.execute(
                update(JOURNEYS)
                .where(JOURNEYS.c.id == row.id, JOURNEYS.c.status.in_(LIVE_STATUSES))
                .values(
                    status=JourneyStatus.active.value,
                    node_id=goal.id,
                    visits=visits,
                    due_at=now,
                    wake_event_id=record.id,
                    wait_event_type=None,
                    wait_match=None,
                    waiting_since=None,
                    attempts=0,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=now,
                )
            )
            if result.rowcount:  # type: ignore[attr-defined]
                moved.append(row.id)
            break
    return tuple(moved)
