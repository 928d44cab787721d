"""A flow's results as its page charts them and the canvas overlays them.

Everything is read from the results rollup (``runtime.models.results``, kept
current by the worker) and, for who is waiting at a node right now, from the
live journeys through their (version, node) index: never from the step history,
which stays fast on a flow with millions of steps and survives its pruning.
Days are UTC days, the rollup's buckets.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.i18n import gettext as _
from backend.models import FlowVersion, Journey
from runtime.claims import LIVE_SQL
from runtime.models import FlowResult, Metric

DEFAULT_DAYS = 30
MAX_DAYS = 366
MESSAGE_TYPES = ("action.email", "action.sms")


class ResultsFilterError(ValueError):
    """A date range or version a person picked that cannot be shown; the message says why."""


@dataclass(frozen=True)
class ResultsFilter:
    """Which customers to count: those who reached a node from ``start`` to ``end``
    (inclusive), in the version numbered ``version`` or (None) in every version."""

    start: date
    end: date
    version: int | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @classmethod
    def parse(cls, params: dict[str, Any], *, today: date) -> ResultsFilter:
        """From ``from``/``to`` (ISO dates) and ``version`` (a number, or empty for all)."""
        try:
            end = _day(params.get("to")) or today
            start = _day(params.get("from")) or end - timedelta(days=DEFAULT_DAYS - 1)
        except ValueError as exc:
            raise ResultsFilterError(_("Write dates as YYYY-MM-DD, like 2026-11-27.")) from exc
        if start > end:
            raise ResultsFilterError(_("The first day comes after the last day."))
        if (end - start).days >= MAX_DAYS:
            raise ResultsFilterError(_("Pick at most a year of days."))
        version = str(params.get("version") or "").strip()
        if version and not version.isdigit():
            raise ResultsFilterError(_("There is no such version of this flow."))
        return cls(start, end, int(version) if version else None)


def _day(value: Any) -> date | None:
    text = str(value or "").strip()
    return date.fromisoformat(text) if text else None


@dataclass
class Messages:
    """What became of a message node's messages; rates as fractions (``None`` without a base)."""

    sent: int = 0
    withheld: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    bounced: int = 0
    unsubscribed: int = 0

    def rate(self, name: str) -> float | None:
        base = self.sent if name in ("delivered", "bounced") else self.delivered
        return getattr(self, name) / base if base else None


@dataclass
class NodeResult:
    node_id: str
    label: str
    type: str
    reached: int = 0
    waiting: int = 0
    failed: int = 0
    # The way customers left, by port ("" when their journey ended here).
    ports: dict[str, int] = field(default_factory=dict)
    messages: Messages | None = None

    @property
    def ended(self) -> int:
        return self.ports.get("", 0)

    @property
    def branches(self) -> list[tuple[str, int]]:
        return sorted(((p, n) for p, n in self.ports.items() if p), key=lambda b: -b[1])


@dataclass(frozen=True)
class EdgeResult:
    source: str
    port: str
    target: str
    customers: int


@dataclass(frozen=True)
class DayCount:
    day: date
    entered: int


@dataclass(frozen=True)
class FlowResults:
    filter: ResultsFilter
    # The version whose graph the counts are laid out on (None before the first publish).
    layout: FlowVersion | None
    nodes: list[NodeResult]
    edges: list[EdgeResult]
    days: list[DayCount]

    @property
    def branching(self) -> list[NodeResult]:
        """The nodes customers left by more than the one plain way ("next")."""
        return [node for node in self.nodes if {p for p, _n in node.branches} - {"next"}]

    @property
    def branch_ports(self) -> list[str]:
        ports: dict[str, None] = {}
        for node in self.branching:
            ports.update((port, None) for port, _n in node.branches)
        return list(ports)


async def layout_version(
    db: AsyncSession, flow_id: int, published_id: int | None, wanted: ResultsFilter
) -> FlowVersion | None:
    """The version whose graph the results are laid out on: the picked one, else the live one,
    else the newest. Raises when the picked version is not this flow's."""
    if wanted.version is not None:
        version = await db.scalar(
            select(FlowVersion).where(
                FlowVersion.flow_id == flow_id, FlowVersion.number == wanted.version
            )
        )
        if version is None:
            raise ResultsFilterError(_("There is no such version of this flow."))
        return version
    if published_id is not None:
        return await db.get(FlowVersion, published_id)
    return await db.scalar(
        select(FlowVersion)
        .where(FlowVersion.flow_id == flow_id)
        .order_by(FlowVersion.number.desc())
        .limit(1)
    )


async def flow_results(
    db: AsyncSession, flow_id: int, published_id: int | None, wanted: ResultsFilter
) -> FlowResults:
    """Counts of the customers who reached each node in the range, laid out along the graph."""
    version = await layout_version(db, flow_id, published_id, wanted)
    graph: dict[str, Any] = version.graph if version is not None else {}
    nodes = {
        spec["id"]: NodeResult(
            spec["id"],
            spec.get("label") or spec["id"],
            spec.get("type", ""),
            messages=Messages() if spec.get("type") in MESSAGE_TYPES else None,
        )
        for spec in graph.get("nodes", [])
    }
    per_day: dict[str, dict[date, int]] = defaultdict(dict)
    only = version.id if version is not None and wanted.version is not None else None
    for node_id, metric, port, day, count in await _rollup(db, flow_id, wanted, only):
        node = nodes.get(node_id)
        if node is None:  # a node of another version that this graph does not have
            continue
        _add(node, metric, port, int(count))
        if metric == Metric.reached.value:
            day = day if isinstance(day, date) else date.fromisoformat(str(day))
            per_day[node_id][day] = per_day[node_id].get(day, 0) + int(count)
    for node_id, waiting in await _waiting(db, flow_id, only):
        if node_id in nodes:
            nodes[node_id].waiting = int(waiting)
    edges = [
        EdgeResult(
            edge["source"],
            edge.get("port") or "next",
            edge["target"],
            nodes[edge["source"]].ports.get(edge.get("port") or "next", 0)
            if edge["source"] in nodes
            else 0,
        )
        for edge in graph.get("edges", [])
    ]
    # Customers enter at the nodes nothing leads to (the triggers).
    entries = set(nodes) - {edge.target for edge in edges}
    days = [
        DayCount(
            wanted.start + timedelta(days=n),
            sum(per_day[e].get(wanted.start + timedelta(days=n), 0) for e in entries),
        )
        for n in range(wanted.days)
    ]
    return FlowResults(wanted, version, list(nodes.values()), edges, days)


def _add(node: NodeResult, metric: str, port: str, count: int) -> None:
    if metric == Metric.reached.value:
        node.reached += count
    elif metric == Metric.left.value:
        node.ports[port] = node.ports.get(port, 0) + count
    elif metric == Metric.failed.value:
        node.failed += count
    else:
        if node.messages is None:
            node.messages = Messages()
        setattr(node.messages, metric, getattr(node.messages, metric, 0) + count)


async def _rollup(
    db: AsyncSession, flow_id: int, wanted: ResultsFilter, version_id: int | None
) -> Any:
    query = (
        select(
            FlowResult.node_id,
            FlowResult.metric,
            FlowResult.port,
            FlowResult.day,
            func.sum(FlowResult.count),
        )
        .where(
            FlowResult.flow_id == flow_id,
            FlowResult.day >= wanted.start,
            FlowResult.day <= wanted.end,
        )
        .group_by(FlowResult.node_id, FlowResult.metric, FlowResult.port, FlowResult.day)
    )
    if version_id is not None:
        query = query.where(FlowResult.flow_version_id == version_id)
    return await db.execute(query)


async def _waiting(db: AsyncSession, flow_id: int, version_id: int | None) -> Any:
    """Live journeys per node now, whatever the date range: a state, not a count over time."""
    # The ids as values, not a subquery: SQLite then walks the (version, node) index.
    versions = (
        [version_id]
        if version_id is not None
        else list(await db.scalars(select(FlowVersion.id).where(FlowVersion.flow_id == flow_id)))
    )
    return await db.execute(
        select(Journey.node_id, func.count())
        .where(Journey.flow_version_id.in_(versions), LIVE_SQL)
        .group_by(Journey.node_id)
    )
