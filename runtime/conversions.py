"""Recording conversions: which journeys met their flow's goal, and when.

Two roads lead to a row in ``conversions``. A goal node that ends a journey
writes it with its step (``runtime.walk``). A flow goal (``runtime.goals``)
is checked here, set-based, once per sweep interval: for every version whose
settings name a goal, the journeys that entered within the goal's window and
have not converted yet are matched against the events, attributes or stage
of their customer. The journey is the key, so a second sweep, or a goal node
after the flow goal, records nothing twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.goals import FLOW_GOAL, FlowGoal, stages_from
from runtime.graph import FlowSettings
from runtime.models import LIVE_STATUSES, FlowVersion
from runtime.reactions import move_onto_goal
from runtime.rules import InvalidRule, matches_filter, parse_rule
from runtime.rules.evaluate import RuleClock
from runtime.rules.sql import to_sql
from runtime.sql import (
    CONTACTS,
    CONVERSIONS,
    EVENTS,
    JOURNEYS,
    dialect_name,
    upsert_insert,
)
from runtime.versions import CompiledFlow, CompiledNode, VersionCache

__all__ = ["flow_goals", "reach_condition_goals", "record_flow_goals"]

log = logging.getLogger(__name__)

# Journeys are looked at for this long after their window closed, so a worker
# that was down for a while still credits conversions that happened in time.
_GRACE = timedelta(days=7)


async def flow_goals(session: AsyncSession) -> dict[int, tuple[int, FlowGoal]]:
    """``version id -> (flow id, goal)`` for every published version that names a goal."""
    goals: dict[int, tuple[int, FlowGoal]] = {}
    rows = await session.execute(select(FlowVersion.id, FlowVersion.flow_id, FlowVersion.graph))
    for version_id, flow_id, graph in rows:
        raw = (graph or {}).get("settings", {}).get("goal")
        if not raw:
            continue
        try:
            goal = FlowSettings.model_validate({"goal": raw}).goal
        except ValidationError:
            continue  # a goal the current code no longer reads counts nothing
        if goal is not None:
            goals[version_id] = (flow_id, goal)
    return goals


def _open_journeys(version_id: int, goal: FlowGoal, now: datetime) -> list[Any]:
    window = timedelta(days=goal.within_days)
    return [
        JOURNEYS.c.flow_version_id == version_id,
        JOURNEYS.c.entered_at >= now - window - _GRACE,
        ~exists().where(CONVERSIONS.c.journey_id == JOURNEYS.c.id),
    ]


async def _event_matches(
    session: AsyncSession, version_id: int, goal: FlowGoal, now: datetime
) -> dict[int, datetime]:
    """Each open journey's first goal event after it entered, within the window."""
    same_customer = or_(
        # A claimed event (a browser's unproven word) is not the contact's until verified.
        (EVENTS.c.contact_id == JOURNEYS.c.contact_id) & EVENTS.c.claimed.is_(False),
        (EVENTS.c.visitor_id == JOURNEYS.c.visitor_id) & JOURNEYS.c.contact_id.is_(None),
    )
    rows = await session.execute(
        select(JOURNEYS.c.id, JOURNEYS.c.entered_at, EVENTS.c.occurred_at, EVENTS.c.properties)
        .join(EVENTS, same_customer)
        .where(
            *_open_journeys(version_id, goal, now),
            EVENTS.c.type == goal.event_type,
            EVENTS.c.occurred_at >= JOURNEYS.c.entered_at,
        )
        .order_by(EVENTS.c.occurred_at)
    )
    window = timedelta(days=goal.within_days)
    found: dict[int, datetime] = {}
    for journey_id, entered_at, occurred_at, properties in rows:
        if journey_id in found or occurred_at > entered_at + window:
            continue
        clock = RuleClock(occurred_at.astimezone(UTC))
        if all(matches_filter(properties or {}, item, clock) for item in goal.where):
            found[journey_id] = occurred_at
    return found


async def _contact_matches(
    session: AsyncSession, version_id: int, goal: FlowGoal, now: datetime
) -> dict[int, datetime]:
    """Open journeys whose contact now has the attribute or stage, changed after entering.

    The contact's ``updated_at`` stands for when the change happened: a
    contact who already had it and has not changed since does not count.
    """
    condition: ColumnElement[bool]
    if goal.kind == "stage":
        assert goal.stage is not None
        condition = CONTACTS.c.lifecycle_stage.in_(stages_from(goal.stage))
    else:
        assert goal.attribute is not None
        condition = to_sql(goal.attribute, dialect=dialect_name(session), now=now)
    rows = await session.execute(
        select(JOURNEYS.c.id, JOURNEYS.c.entered_at, CONTACTS.c.updated_at)
        .join(CONTACTS, CONTACTS.c.id == JOURNEYS.c.contact_id)
        .where(
            *_open_journeys(version_id, goal, now),
            CONTACTS.c.erased_at.is_(None),
            CONTACTS.c.updated_at >= JOURNEYS.c.entered_at,
            condition,
        )
    )
    window = timedelta(days=goal.within_days)
    return {
        journey_id: updated_at
        for journey_id, entered_at, updated_at in rows
        if updated_at <= entered_at + window
    }


async def record_flow_goals(session: AsyncSession, now: datetime) -> int:
    """Record the conversions flow goals have seen since the last sweep; returns how many."""
    recorded = 0
    for version_id, (flow_id, goal) in (await flow_goals(session)).items():
        if goal.kind == "event":
            found = await _event_matches(session, version_id, goal, now)
        else:
            found = await _contact_matches(session, version_id, goal, now)
        if not found:
            continue
        stmt = upsert_insert(session, CONVERSIONS).on_conflict_do_nothing(
            index_elements=[CONVERSIONS.c.journey_id]
        )
        await session.execute(
            stmt,
            [
                {
                    "journey_id": journey_id,
                    "flow_id": flow_id,
                    "goal": FLOW_GOAL,
                    "label": goal.label,
                    "converted_at": at,
                }
                for journey_id, at in found.items()
            ],
        )
        recorded += len(found)
    return recorded


async def reach_condition_goals(
    session: AsyncSession, versions: VersionCache, now: datetime
) -> int:
    """Goal nodes met by a contact change (a stage, an attribute value): reach them.

    A live journey whose contact now meets such a goal, and was changed after
    entering, moves onto the goal node like an event goal moves it (flow
    setting "exit when the goal is reached"); the goal runs next and records
    the conversion. Without that exit rule the conversion is recorded and the
    journey goes on. Returns how many journeys converted or moved.
    """
    version_ids = set(
        (
            await session.execute(
                select(JOURNEYS.c.flow_version_id)
                .where(JOURNEYS.c.status.in_(LIVE_STATUSES))
                .distinct()
            )
        ).scalars()
    )
    if not version_ids:
        return 0
    reached = 0
    for flow in (await versions.get_many(session, version_ids)).values():
        for goal in flow.condition_goals:
            reached += await _reach(session, flow, goal, now)
    return reached


async def _reach(
    session: AsyncSession, flow: CompiledFlow, goal: CompiledNode, now: datetime
) -> int:
    assert goal.trigger is not None
    try:
        rule = parse_rule(goal.trigger.audience)
    except InvalidRule as exc:
        log.error("flow %s goal %s has an invalid condition: %s", flow.flow_id, goal.id, exc)
        return 0
    moving = "goal_reached" in flow.settings.exit_on
    query = (
        select(JOURNEYS.c.id, JOURNEYS.c.visits)
        .join(CONTACTS, CONTACTS.c.id == JOURNEYS.c.contact_id)
        .where(
            JOURNEYS.c.flow_version_id == flow.version_id,
            JOURNEYS.c.status.in_(LIVE_STATUSES),
            JOURNEYS.c.node_id != goal.id,
            CONTACTS.c.erased_at.is_(None),
            CONTACTS.c.updated_at >= JOURNEYS.c.entered_at,
            to_sql(rule, dialect=dialect_name(session), now=now),
        )
    )
    if not moving:
        query = query.where(~exists().where(CONVERSIONS.c.journey_id == JOURNEYS.c.id))
    rows = (await session.execute(query)).all()
    if not rows:
        return 0
    if not moving:
        label = getattr(goal.config, "label", None)
        stmt = upsert_insert(session, CONVERSIONS).on_conflict_do_nothing(
            index_elements=[CONVERSIONS.c.journey_id]
        )
        await session.execute(
            stmt,
            [
                {
                    "journey_id": journey_id,
                    "flow_id": flow.flow_id,
                    "goal": goal.id,
                    "label": label if isinstance(label, str) else goal.id,
                    "converted_at": now,
                }
                for journey_id, _visits in rows
            ],
        )
        return len(rows)
    for journey_id, visits in rows:
        counted = dict(visits or {})
        counted[goal.id] = counted.get(goal.id, 0) + 1
        await move_onto_goal(session, journey_id, goal.id, counted, now)
    return len(rows)
