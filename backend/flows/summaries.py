"""Flows as the list and detail pages show them: status, journey counts, versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import LIVE_STATUSES, Flow, FlowVersion, Journey, JourneyStatus

NO_PROCESS = 0  # the flows list's filter value for "in no process"


@dataclass(frozen=True)
class JourneyCounts:
    entered: int = 0
    active: int = 0
    completed: int = 0


@dataclass(frozen=True)
class FlowSummary:
    flow: Flow
    counts: JourneyCounts
    last_published_at: datetime | None


async def journey_counts(db: AsyncSession, flow_ids: list[int]) -> dict[int, JourneyCounts]:
    if not flow_ids:
        return {}
    rows = await db.execute(
        select(
            Journey.flow_id,
            func.count(),
            func.sum(case((Journey.status.in_(LIVE_STATUSES), 1), else_=0)),
            func.sum(case((Journey.status == JourneyStatus.completed.value, 1), else_=0)),
        )
        .where(Journey.flow_id.in_(flow_ids))
        .group_by(Journey.flow_id)
    )
    return {
        flow_id: JourneyCounts(int(entered), int(active or 0), int(completed or 0))
        for flow_id, entered, active, completed in rows
    }


async def flow_summaries(
    db: AsyncSession, *, phase: str | None = None, process_id: int | None = None
) -> list[FlowSummary]:
    """Flows, most recently changed first, with their journey counts.

    ``phase`` keeps the flows of one phase; ``process_id`` those of one process,
    and ``NO_PROCESS`` those in no process.
    """
    last_published = (
        select(FlowVersion.flow_id, func.max(FlowVersion.published_at).label("at"))
        .group_by(FlowVersion.flow_id)
        .subquery()
    )
    query = (
        select(Flow, last_published.c.at)
        .outerjoin(last_published, last_published.c.flow_id == Flow.id)
        .order_by(Flow.updated_at.desc(), Flow.id.desc())
    )
    if phase is not None:
        query = query.where(Flow.phase == phase)
    if process_id == NO_PROCESS:
        query = query.where(Flow.process_id.is_(None))
    elif process_id is not None:
        query = query.where(Flow.process_id == process_id)
    rows = (await db.execute(query)).all()
    counts = await journey_counts(db, [flow.id for flow, _at in rows])
    return [FlowSummary(flow, counts.get(flow.id, JourneyCounts()), at) for flow, at in rows]


async def flow_versions(db: AsyncSession, flow_id: int) -> list[FlowVersion]:
    rows = await db.scalars(
        select(FlowVersion)
        .where(FlowVersion.flow_id == flow_id)
        .order_by(FlowVersion.number.desc())
    )
    return list(rows)
