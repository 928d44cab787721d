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

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.goals import FLOW_GOAL, FlowGoal, stages_from
from runtime.graph import FlowSettings
from runtime.models import FlowVersion
from runtime.rules import matches_filter
from runtime.rules.evaluate import RuleClock
from runtime.rules.sql import to_sql
from runtime.sql import CONTACTS, CONVERSIONS, EVENTS, JOURNEYS, dialect_name, upsert_insert

__all__ = ["flow_goals", "record_flow_goals"]

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
        EVENTS.c.contact_id == JOURNEYS.c.contact_id,
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
