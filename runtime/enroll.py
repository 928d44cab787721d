"""Enrollment: customers entering a flow version, one at a time or set-based.

Re-entry is enforced by the database, not by a read-then-write check:
``journeys.entry_key`` is unique while a journey is live, so two workers
ingesting the same event (or a duplicate event) cannot create two live
journeys for one customer; "once ever" and "again after N days" add a
``NOT EXISTS`` over earlier journeys of the flow.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    cast,
    exists,
    literal,
    not_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.graph import FlowSettings
from runtime.models import FlowStatus, JourneyStatus
from runtime.sql import CONTACTS, FLOWS, JOURNEYS, upsert_insert
from runtime.versions import CompiledFlow, VersionCache

__all__ = ["enroll_audience", "enroll_customer", "entry_key", "new_journey"]


def entry_key(flow_id: int, contact_id: int | None, visitor_id: str | None) -> str:
    """The value that keeps one customer live in a flow at most once."""
    if contact_id is not None:
        return f"{flow_id}:c:{contact_id}"
    return f"{flow_id}:v:{visitor_id}"


def _earlier_journey(
    flow_id: int, settings: FlowSettings, customer: ColumnElement[bool], now: datetime
) -> ColumnElement[bool] | None:
    """``EXISTS`` an earlier journey that forbids entering again, or None if none can."""
    if settings.reentry == "once":
        return exists().where(JOURNEYS.c.flow_id == flow_id, customer)
    if settings.reentry == "after_days":
        since = now - timedelta(days=settings.reentry_days or 0)
        return exists().where(
            JOURNEYS.c.flow_id == flow_id, customer, JOURNEYS.c.entered_at > since
        )
    return None


def new_journey(
    flow: CompiledFlow, trigger_node_id: str, data: dict[str, Any], now: datetime
) -> dict[str, Any]:
    return {
        "flow_id": flow.flow_id,
        "flow_version_id": flow.version_id,
        "status": JourneyStatus.active.value,
        "node_id": trigger_node_id,
        "visits": {trigger_node_id: 1},
        "data": data,
        "due_at": now,
        "attempts": 0,
        "entered_at": now,
        "updated_at": now,
    }


async def enroll_customer(
    session: AsyncSession,
    flow: CompiledFlow,
    trigger_node_id: str,
    *,
    contact_id: int | None = None,
    visitor_id: str | None = None,
    data: dict[str, Any] | None = None,
    now: datetime,
) -> int | None:
    """Start a journey for one customer at ``trigger_node_id``, if the re-entry policy allows.

    Returns the new journey's id, or None when the customer may not enter
    (already in the flow, entered before, or entered within the last N days).
    """
    if (contact_id is None) == (visitor_id is None):
        raise ValueError("enroll exactly one of a contact or a visitor")
    customer = (
        JOURNEYS.c.contact_id == contact_id
        if contact_id is not None
        else JOURNEYS.c.visitor_id == visitor_id
    )
    blocker = _earlier_journey(flow.flow_id, flow.settings, customer, now)
    if blocker is not None and await session.scalar(select(blocker)):
        return None
    row = new_journey(flow, trigger_node_id, data or {}, now)
    row.update(
        contact_id=contact_id,
        visitor_id=visitor_id,
        entry_key=entry_key(flow.flow_id, contact_id, visitor_id),
    )
    stmt = (
        upsert_insert(session, JOURNEYS)
        .values(row)
        .on_conflict_do_nothing(index_elements=[JOURNEYS.c.entry_key])
        .returning(JOURNEYS.c.id)
    )
    new_id: int | None = await session.scalar(stmt)
    return new_id


async def enroll_audience(
    session: AsyncSession,
    versions: VersionCache,
    flow_id: int,
    condition: ColumnElement[bool],
    *,
    now: datetime,
    trigger_node_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> int:
    """Enroll every contact matching ``condition`` with one ``INSERT ... SELECT``.

    ``condition`` is a SQLAlchemy boolean expression over the ``contacts``
    table (the rule compiler produces it). Erased contacts never enter, and
    the flow's re-entry policy applies exactly as for event triggers.
    Returns how many journeys were created; a flow that is not active enrolls nobody.
    """
    flow_row = (
        await session.execute(
            select(FLOWS.c.status, FLOWS.c.published_version_id).where(FLOWS.c.id == flow_id)
        )
    ).one_or_none()
    if flow_row is None or flow_row.status != FlowStatus.active.value:
        return 0
    if flow_row.published_version_id is None:
        return 0
    flow = await versions.get(session, flow_row.published_version_id)
    if trigger_node_id is None:
        if not flow.triggers:
            raise ValueError(f"flow {flow_id} has no trigger node")
        trigger_node_id = flow.triggers[0].id
    template = new_journey(flow, trigger_node_id, data or {}, now)
    columns = [JOURNEYS.c[name] for name in template]
    selected: list[Any] = [
        literal(value, type_=JOURNEYS.c[name].type) for name, value in template.items()
    ]
    columns += [JOURNEYS.c.contact_id, JOURNEYS.c.entry_key]
    selected += [CONTACTS.c.id, literal(f"{flow_id}:c:") + cast(CONTACTS.c.id, String)]
    where = [condition, CONTACTS.c.erased_at.is_(None)]
    blocker = _earlier_journey(flow_id, flow.settings, JOURNEYS.c.contact_id == CONTACTS.c.id, now)
    if blocker is not None:
        where.append(not_(blocker))
    stmt = (
        upsert_insert(session, JOURNEYS)
        .from_select(columns, select(*selected).where(and_(*where)))
        .on_conflict_do_nothing(index_elements=[JOURNEYS.c.entry_key])
    )
    result = await session.execute(stmt)
    return int(result.rowcount)  # type: ignore[attr-defined]
