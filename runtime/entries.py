"""Entries that no event causes: schedule triggers, audience triggers, and API starts.

A trigger node declares how customers enter (``nodes.sdk.Trigger``); events
are handled by ``runtime.events``. This module covers the rest:

- ``schedule`` + ``audience``: at each cron tick, everyone in the audience
  enters with one ``INSERT ... SELECT``. A tick's journeys are stamped
  ``entered_at = tick``, which is how a later pass (or another worker) knows
  the tick already fired, with no extra state; each process also remembers
  the ticks it handled, so it checks a tick once. A tick more than
  ``MISFIRE_GRACE`` old (the workers were down) is skipped, not replayed.
- ``audience`` alone: contacts matching the rule enter, checked set-based at
  each pass. Under the default re-entry policy a contact enters once; with
  "again after N days" a contact who still matches enters again after N days.
- ``api``: ``start_flow`` enrolls one customer on request (the public API).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import ColumnElement, and_, exists, not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from nodes.sdk import Trigger
from runtime.enroll import enroll_audience, enroll_customer
from runtime.models import FlowStatus, FlowVersion
from runtime.rules import InvalidRule, parse_rule, to_sql
from runtime.sql import CONTACTS, FLOWS, JOURNEYS, dialect_name
from runtime.versions import CompiledFlow, VersionCache

if TYPE_CHECKING:
    from runtime.engine import Runtime

__all__ = [
    "MISFIRE_GRACE",
    "EntryReport",
    "FlowNotStartable",
    "enter_due",
    "latest_tick",
    "start_flow",
]

log = logging.getLogger(__name__)

MISFIRE_GRACE = timedelta(hours=1)


@dataclass
class EntryReport:
    scheduled: int = 0
    audience: int = 0


class FlowNotStartable(ValueError):
    """The flow is not active, or has no API trigger to start it with."""


def latest_tick(cron: str, timezone: str, now: datetime) -> datetime:
    """The most recent moment at or before ``now`` that the cron schedule names, in UTC."""
    local = now.astimezone(ZoneInfo(timezone))
    previous: datetime = croniter(cron, local + timedelta(microseconds=1)).get_prev(datetime)
    return previous.astimezone(UTC)


def due_tick(trigger: Trigger, published_at: datetime, now: datetime) -> datetime | None:
    """The schedule's tick to fire now, if one is due (not before publishing, not too old)."""
    assert trigger.schedule is not None
    tick = latest_tick(trigger.schedule, trigger.timezone or "UTC", now)
    if tick < published_at or now - tick > MISFIRE_GRACE:
        return None
    return tick


async def _fire_schedule(
    session: AsyncSession,
    versions: VersionCache,
    flow: CompiledFlow,
    node_id: str,
    audience: ColumnElement[bool],
    tick: datetime,
) -> int:
    fired = exists().where(JOURNEYS.c.flow_id == flow.flow_id, JOURNEYS.c.entered_at == tick)
    if await session.scalar(select(fired)):
        return 0
    data = {"trigger": {"type": "schedule", "node_id": node_id, "tick": tick.isoformat()}}
    return await enroll_audience(
        session, versions, flow.flow_id, audience, now=tick, trigger_node_id=node_id, data=data
    )


async def _enter_audience(
    session: AsyncSession,
    versions: VersionCache,
    flow: CompiledFlow,
    node_id: str,
    audience: ColumnElement[bool],
    now: datetime,
) -> int:
    condition = audience
    if flow.settings.reentry == "once_at_a_time":
        # Being in the audience is a state, not an event: without this a contact
        # who keeps matching would start over each time their journey ends.
        earlier = exists().where(
            JOURNEYS.c.flow_id == flow.flow_id, JOURNEYS.c.contact_id == CONTACTS.c.id
        )
        condition = and_(audience, not_(earlier))
    data = {"trigger": {"type": "audience", "node_id": node_id}}
    return await enroll_audience(
        session, versions, flow.flow_id, condition, now=now, trigger_node_id=node_id, data=data
    )


async def _set_based_triggers(
    rt: Runtime,
) -> list[tuple[CompiledFlow, str, Trigger, datetime]]:
    async with rt.sessions() as session:
        rows = (
            await session.execute(
                select(FLOWS.c.published_version_id, FlowVersion.published_at)
                .join(FlowVersion, FlowVersion.id == FLOWS.c.published_version_id)
                .where(FLOWS.c.status == FlowStatus.active.value)
            )
        ).all()
        if not rows:
            return []
        flows = await rt.versions.get_many(session, {row.published_version_id for row in rows})
    found = []
    for row in rows:
        flow = flows[row.published_version_id]
        for node in flow.triggers:
            if node.trigger is not None and node.trigger.audience is not None:
                found.append((flow, node.id, node.trigger, row.published_at))
    return found


async def enter_due(rt: Runtime) -> EntryReport:
    """Fire due schedule ticks and let audience triggers enroll new matches.

    Each trigger runs in its own transaction; one that fails is logged and
    retried at the next pass, and does not hold the others back.
    """
    report = EntryReport()
    now = rt.clock.now()
    for flow, node_id, trigger, published_at in await _set_based_triggers(rt):
        tick = due_tick(trigger, published_at, now) if trigger.schedule else None
        handled = (flow.version_id, node_id)
        if trigger.schedule and (tick is None or rt.handled_ticks.get(handled) == tick):
            continue
        try:
            rule = parse_rule(trigger.audience)
        except InvalidRule as exc:
            log.error("flow %s trigger %s has an invalid audience: %s", flow.flow_id, node_id, exc)
            continue
        try:
            async with rt.sessions() as session, session.begin():
                audience = to_sql(
                    rule, dialect=dialect_name(session), now=now, timezone=trigger.timezone or "UTC"
                )
                if tick is not None:
                    report.scheduled += await _fire_schedule(
                        session, rt.versions, flow, node_id, audience, tick
                    )
                else:
                    report.audience += await _enter_audience(
                        session, rt.versions, flow, node_id, audience, now
                    )
        except Exception:
            log.exception("entering flow %s through trigger %s failed", flow.flow_id, node_id)
            continue
        if tick is not None:
            # Committed, even if nobody matched: later matches wait for the next tick.
            rt.handled_ticks[handled] = tick
    if report.scheduled or report.audience:
        rt.doorbell.ring()
    return report


async def start_flow(
    session: AsyncSession,
    versions: VersionCache,
    flow_id: int,
    *,
    now: datetime,
    contact_id: int | None = None,
    visitor_id: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> int | None:
    """Enroll one customer through the flow's API trigger; returns the journey id.

    None means the re-entry policy kept the customer out. Raises
    ``FlowNotStartable`` when the flow is not active or has no API trigger.
    """
    row = (
        await session.execute(
            select(FLOWS.c.status, FLOWS.c.published_version_id).where(FLOWS.c.id == flow_id)
        )
    ).one_or_none()
    if row is None or row.status != FlowStatus.active.value or row.published_version_id is None:
        raise FlowNotStartable(f"Flow {flow_id} is not active, so it cannot be started.")
    flow = await versions.get(session, row.published_version_id)
    entry = next((n for n in flow.triggers if n.trigger is not None and n.trigger.api), None)
    if entry is None:
        raise FlowNotStartable(
            f"Flow {flow_id} has no API trigger; add an 'API call' trigger to start it this way."
        )
    trigger_data = {"trigger": {"type": "api", "node_id": entry.id, "properties": dict(data or {})}}
    return await enroll_customer(
        session,
        flow,
        entry.id,
        contact_id=contact_id,
        visitor_id=visitor_id,
        data=trigger_data,
        now=now,
    )
