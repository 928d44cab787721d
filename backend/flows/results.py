"""A flow's results as the flow page charts them: who reached each step, which way they went,
and how many entered per day."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import FlowVersion, Journey, Step


@dataclass(frozen=True)
class Branch:
    port: str
    journeys: int


@dataclass
class NodeResult:
    """One step of the published graph: how many journeys ran it, split by the way they left."""

    node_id: str
    label: str
    journeys: int = 0
    branches: list[Branch] = field(default_factory=list)


@dataclass(frozen=True)
class DayCount:
    day: date
    entered: int


@dataclass(frozen=True)
class FlowResults:
    nodes: list[NodeResult]
    days: list[DayCount]

    @property
    def busiest_node(self) -> int:
        return max((node.journeys for node in self.nodes), default=0)

    @property
    def busiest_day(self) -> int:
        return max((day.entered for day in self.days), default=0)


async def flow_results(
    db: AsyncSession, flow_id: int, version_id: int | None, *, now: datetime, days: int = 30
) -> FlowResults:
    """Counts over every version's journeys, laid out along ``version_id``'s graph."""
    graph: dict[str, Any] = {}
    if version_id is not None:
        graph = await db.scalar(select(FlowVersion.graph).where(FlowVersion.id == version_id)) or {}
    nodes = {
        spec["id"]: NodeResult(spec["id"], spec.get("label") or spec["id"])
        for spec in graph.get("nodes", [])
    }
    per_port = await db.execute(
        select(Step.node_id, Step.port, func.count(func.distinct(Step.journey_id)))
        .join(Journey, Journey.id == Step.journey_id)
        .where(Journey.flow_id == flow_id)
        .group_by(Step.node_id, Step.port)
    )
    for node_id, port, journeys in per_port:
        node = nodes.get(node_id)
        if node is None:  # a step of an older version that the live graph no longer has
            continue
        node.journeys += int(journeys)
        if port:
            node.branches.append(Branch(port, int(journeys)))
    for node in nodes.values():
        node.branches.sort(key=lambda branch: -branch.journeys)
    return FlowResults(list(nodes.values()), await _entered_per_day(db, flow_id, now, days))


async def _entered_per_day(
    db: AsyncSession, flow_id: int, now: datetime, days: int
) -> list[DayCount]:
    first = (now - timedelta(days=days - 1)).date()
    day = func.date(Journey.entered_at)
    rows = await db.execute(
        select(day, func.count())
        .where(
            Journey.flow_id == flow_id,
            Journey.entered_at >= datetime.combine(first, datetime.min.time(), now.tzinfo),
        )
        .group_by(day)
    )
    # SQLite answers date() with text, PostgreSQL with a date.
    counts = {str(found): int(entered) for found, entered in rows}
    return [
        DayCount(first + timedelta(days=n), counts.get(str(first + timedelta(days=n)), 0))
        for n in range(days)
    ]
