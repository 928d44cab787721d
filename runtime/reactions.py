"""How flows react to a batch of stored events: enroll, wake waiting journeys, reach goals.

``runtime.events`` stores the events, then ``react`` takes the stored ones of
the batch: one read of the active flows and, when some trigger listens for
these event types, of the customers' profiles and earlier journeys (re-entry
rules), one ``INSERT`` of the new journeys; one read of the customers' live
journeys with their waits, one ``UPDATE`` waking those waiting for these
event types, and the goals those events meet. The per-event decisions are
made in the order of the items, as ``runtime.events`` describes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nodes.sdk import Profile
from runtime.claims import drop_leases
from runtime.enroll import entry_key, new_journey
from runtime.event_batch import ENROLLING, EventBatch, EventIn, matches
from runtime.models import JourneyStatus
from runtime.models.journeys import LIVE_STATUSES
from runtime.profiles import CustomerKey, customer_key, load_profiles
from runtime.sql import (
    FLOWS,
    JOURNEYS,
    among,
    close_open_steps,
    upsert_insert,
)
from runtime.versions import CompiledFlow, VersionCache

__all__ = ["move_onto_goal", "react"]


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


async def react(session: AsyncSession, versions: VersionCache, batch: EventBatch) -> None:
    types = {batch.items[i].type for i in batch.stored}
    active = batch.enrolling
    if active is None:
        rows = await session.execute(select(FLOWS.c.published_version_id).where(*ENROLLING))
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


def _owners(session: AsyncSession, batch: EventBatch) -> Any:
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
    session: AsyncSession, batch: EventBatch, types: set[str]
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
    batch: EventBatch,
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
    batch: EventBatch,
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


async def _batch_profiles(session: AsyncSession, batch: EventBatch) -> dict[CustomerKey, Profile]:
    customers = [batch.items[i] for i in batch.stored]
    return await load_profiles(
        session,
        [c.contact_id for c in customers if c.contact_id is not None],
        [c.visitor_id for c in customers if c.contact_id is None and c.visitor_id is not None],
    )


async def _write_wakes(
    session: AsyncSession, batch: EventBatch, wakes: dict[int, tuple[int, _Live]]
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
    batch: EventBatch,
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
