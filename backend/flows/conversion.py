"""A flow's conversion figures: overall, per entry week, per split branch, time to convert,
and the funnel along its main path.

Every figure counts journeys (one customer's pass through the flow) over all
versions of the flow, and a journey converted when ``conversions`` holds a row
for it (``runtime.conversions``). Aggregation happens in SQL (per day, per node
and port); only the conversions' durations come back row by row, for the
percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.flows.verdicts import Arm, Verdict, judge
from backend.i18n import _
from backend.models import FlowVersion, Journey, Step
from nodes.sdk import Family, NodeRegistry
from runtime.graph import FlowGraph
from runtime.models import JourneyConversion

__all__ = [
    "Cohort",
    "FlowConversion",
    "FunnelStep",
    "SplitResult",
    "flow_conversion",
    "main_path",
    "nearest_rank",
]


@dataclass(frozen=True)
class Cohort:
    """The journeys that entered in one ISO week (``week`` is its Monday)."""

    week: date
    entered: int
    converted: int

    @property
    def label(self) -> str:
        year, number, _day = self.week.isocalendar()
        return f"{year}-W{number:02d}"

    @property
    def rate(self) -> float:
        return self.converted / self.entered if self.entered else 0.0


@dataclass(frozen=True)
class FunnelStep:
    node_id: str
    label: str
    journeys: int


@dataclass(frozen=True)
class SplitResult:
    """One split node: its branches as arms, what each branch leads to, and the verdict."""

    node_id: str
    label: str
    arms: list[Arm]
    leads_to: dict[str, str]  # port -> label of the node the branch starts with
    verdict: Verdict


@dataclass
class FlowConversion:
    entered: int = 0
    converted: int = 0
    goals: list[tuple[str, int]] = field(default_factory=list)  # label, conversions
    cohorts: list[Cohort] = field(default_factory=list)
    median: timedelta | None = None
    p90: timedelta | None = None
    funnel: list[FunnelStep] = field(default_factory=list)
    splits: list[SplitResult] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.converted / self.entered if self.entered else 0.0


def nearest_rank(values: Sequence[float], share: float) -> float:
    """The smallest value with at least ``share`` of ``values`` at or below it (nearest rank)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def _label(node: dict[str, Any], registry: NodeRegistry) -> str:
    if node.get("label"):
        return str(node["label"])
    node_type = registry.get(str(node.get("type")))
    return str(node_type.name) if node_type is not None else str(node.get("id"))


def _port_label(label: str, config: dict[str, Any]) -> str:
    """A branch name the marketer wrote stays as is; a node type's own (Holdout) is translated."""
    written: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, str):
            written.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(config)
    return label if label in written else _(label)


def main_path(
    graph: FlowGraph, traffic: dict[tuple[str, str], int], triggers: list[str]
) -> list[str]:
    """The most-travelled path: from the busiest trigger, always along the busiest port.

    ``traffic`` maps (node id, port) to the journeys that left that way. A
    node is visited once, so a loop back through a wait ends the path.
    """
    if not triggers:
        return []
    leaving: dict[str, int] = {}
    for (node_id, _port), count in traffic.items():
        leaving[node_id] = leaving.get(node_id, 0) + count
    path = [max(triggers, key=lambda t: (leaving.get(t, 0), -triggers.index(t)))]
    while True:
        routed = sorted(
            (port, count)
            for (node_id, port), count in traffic.items()
            if node_id == path[-1] and graph.target(path[-1], port)
        )
        if not routed:
            return path
        # On a tie the first port in name order (branch a before b) is the main path.
        port, _count = max(routed, key=lambda item: item[1])
        target = graph.target(path[-1], port)
        assert target is not None
        if target in path:
            return path
        path.append(target)


async def flow_conversion(
    db: AsyncSession, flow_id: int, version_id: int | None, registry: NodeRegistry
) -> FlowConversion:
    """Every conversion figure of one flow, laid out along version ``version_id``'s graph."""
    result = FlowConversion()
    converted = JourneyConversion.journey_id.is_not(None)
    per_day = func.date(Journey.entered_at)
    rows = await db.execute(
        select(per_day, func.count(Journey.id), func.count(JourneyConversion.journey_id))
        .outerjoin(JourneyConversion, JourneyConversion.journey_id == Journey.id)
        .where(Journey.flow_id == flow_id)
        .group_by(per_day)
    )
    weeks: dict[date, list[int]] = {}
    for day, entered, won in rows:
        # SQLite answers date() with text, PostgreSQL with a date.
        found = date.fromisoformat(day) if isinstance(day, str) else day
        monday = found - timedelta(days=found.weekday())
        counts = weeks.setdefault(monday, [0, 0])
        counts[0] += int(entered)
        counts[1] += int(won)
    result.cohorts = [Cohort(week, *weeks[week]) for week in sorted(weeks)]
    result.entered = sum(c.entered for c in result.cohorts)
    result.converted = sum(c.converted for c in result.cohorts)

    goals = await db.execute(
        select(JourneyConversion.label, func.count())
        .where(JourneyConversion.flow_id == flow_id)
        .group_by(JourneyConversion.label)
        .order_by(func.count().desc(), JourneyConversion.label)
    )
    result.goals = [(str(label), int(count)) for label, count in goals]

    durations = await db.execute(
        select(Journey.entered_at, JourneyConversion.converted_at)
        .join(JourneyConversion, JourneyConversion.journey_id == Journey.id)
        .where(Journey.flow_id == flow_id, converted)
    )
    seconds = [max((won - entered).total_seconds(), 0.0) for entered, won in durations]
    if seconds:
        result.median = timedelta(seconds=nearest_rank(seconds, 0.5))
        result.p90 = timedelta(seconds=nearest_rank(seconds, 0.9))

    graph = await _graph(db, version_id)
    if graph is not None:
        await _along_graph(db, flow_id, graph, registry, result)
    return result


async def _graph(db: AsyncSession, version_id: int | None) -> FlowGraph | None:
    if version_id is None:
        return None
    raw = await db.scalar(select(FlowVersion.graph).where(FlowVersion.id == version_id))
    try:
        return FlowGraph.model_validate(raw or {})
    except ValidationError:
        return None


async def _along_graph(
    db: AsyncSession,
    flow_id: int,
    graph: FlowGraph,
    registry: NodeRegistry,
    result: FlowConversion,
) -> None:
    """The funnel and the split verdicts: both need per node and port counts."""
    rows = await db.execute(
        select(
            Step.node_id,
            Step.port,
            func.count(func.distinct(Step.journey_id)),
            func.count(func.distinct(JourneyConversion.journey_id)),
        )
        .join(Journey, Journey.id == Step.journey_id)
        .outerjoin(JourneyConversion, JourneyConversion.journey_id == Step.journey_id)
        .where(Journey.flow_id == flow_id)
        .group_by(Step.node_id, Step.port)
    )
    traffic: dict[tuple[str, str], int] = {}
    won: dict[tuple[str, str], int] = {}
    reached: dict[str, int] = {}
    for node_id, port, journeys, conversions in rows:
        reached[node_id] = reached.get(node_id, 0) + int(journeys)
        if port:
            traffic[(node_id, port)] = int(journeys)
            won[(node_id, port)] = int(conversions)
    raw_nodes = {node.id: node.model_dump() for node in graph.nodes}
    families = {
        node.id: node_type.family
        for node in graph.nodes
        if (node_type := registry.get(node.type)) is not None
    }
    triggers = [n.id for n in graph.nodes if families.get(n.id) is Family.trigger]
    result.funnel = [
        FunnelStep(node_id, _label(raw_nodes[node_id], registry), reached.get(node_id, 0))
        for node_id in main_path(graph, traffic, triggers)
    ]
    for node in graph.nodes:
        if families.get(node.id) is not Family.split:
            continue
        node_type = registry.get(node.type)
        assert node_type is not None
        try:
            ports = node_type.output_ports(node_type.config_model.model_validate(node.config))
        except ValidationError:
            continue
        arms = [
            Arm(
                port.id,
                _port_label(port.label or port.id.upper(), node.config),
                traffic.get((node.id, port.id), 0),
                won.get((node.id, port.id), 0),
            )
            for port in ports
        ]
        leads_to = {
            port.id: _label(raw_nodes[target], registry)
            for port in ports
            if (target := graph.target(node.id, port.id)) is not None
        }
        result.splits.append(
            SplitResult(node.id, _label(raw_nodes[node.id], registry), arms, leads_to, judge(arms))
        )
