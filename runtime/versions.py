"""Published flow versions, compiled once: parsed graph, node instances and configs.

Versions never change after publishing (DESIGN principle 7), so a compiled
version is cached for the life of the process and the hot path never parses
JSON graphs or configs again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from nodes.sdk import (
    EventRecord,
    Family,
    NodeRegistry,
    NodeType,
    Profile,
    Trigger,
    upgrade_config,
)
from runtime.graph import FlowGraph, FlowSettings
from runtime.models import FlowVersion


@dataclass(frozen=True)
class CompiledNode:
    """One node of a version, ready to run."""

    id: str
    type_id: str
    node: NodeType[Any] | None
    config: BaseModel | None
    ports: frozenset[str]
    family: Family | None
    trigger: Trigger | None
    needs_events: bool = False
    # Why the node cannot run (its type was uninstalled, its config no longer parses).
    problem: str | None = None
    # The journey waits here (retried hourly, never failed) instead of failing: its
    # type is missing or now comes from another package than the one published.
    held: bool = False

    def accepts(self, event: EventRecord, profile: Profile) -> bool:
        """Whether this trigger (or goal) node takes ``event`` for ``profile``."""
        if self.node is None or self.config is None:
            return False
        return type(self.node).accepts(self.config, event, profile)


@dataclass(frozen=True)
class CompiledFlow:
    """A flow version with its routing table and per-node runners."""

    version_id: int
    flow_id: int
    settings: FlowSettings
    nodes: dict[str, CompiledNode]
    routes: dict[tuple[str, str], str]
    triggers: tuple[CompiledNode, ...] = ()
    goals: tuple[CompiledNode, ...] = field(default=())
    # Goal nodes met by a change to the contact (a stage, an attribute): runtime.conversions.
    condition_goals: tuple[CompiledNode, ...] = field(default=())
    # Nodes from which a transactional message step can still be reached (itself included).
    transactional_ahead: frozenset[str] = frozenset()
    # Per-node answers worked out on first use (a version never changes): every step asks.
    _exits: dict[tuple[str, bool], tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _goal_labels: dict[str, str | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @cached_property
    def event_nodes(self) -> frozenset[str]:
        """The nodes whose type reads the customer's recent events (``needs_events``)."""
        return frozenset(node_id for node_id, node in self.nodes.items() if node.needs_events)

    def target(self, node_id: str, port: str) -> str | None:
        return self.routes.get((node_id, port))

    def exit_rules(self, node_id: str, *, unsubscribed: bool = True) -> tuple[str, ...]:
        """The exit rules that apply before ``node_id`` runs.

        "unsubscribed" waits while a transactional message (a receipt, a requested
        download) still lies ahead: withdrawing consent stops marketing (the send
        steps and the delivery gate withhold it), never what the customer asked for.
        ``unsubscribed=False`` says the customer has not withdrawn consent: the rule
        cannot apply, so it is left out (``transition`` then skips the consent check).
        """
        key = (node_id, unsubscribed)
        rules = self._exits.get(key)
        if rules is None:
            rules = tuple(self.settings.exit_on)
            if node_id in self.transactional_ahead or not unsubscribed:
                rules = tuple(rule for rule in rules if rule != "unsubscribed")
            self._exits[key] = rules
        return rules

    def goal_label(self, node_id: str) -> str | None:
        """The conversion label of a goal node (its config's ``label``, else its id); None
        for any other node."""
        if node_id in self._goal_labels:
            return self._goal_labels[node_id]
        node = self.nodes.get(node_id)
        label: str | None = None
        if node is not None and node.family is Family.goal:
            # ``getattr`` on a pydantic model without the field raises inside: once per node.
            given = getattr(node.config, "label", None)
            label = given if isinstance(given, str) else node_id
        self._goal_labels[node_id] = label
        return label


def _transactional(config: BaseModel | None) -> bool:
    return config is not None and getattr(config, "category", None) == "transactional"


def transactional_ahead(
    nodes: dict[str, CompiledNode], routes: dict[tuple[str, str], str]
) -> frozenset[str]:
    """Every node with a path (through any port) to a node sending a transactional message."""
    back: dict[str, set[str]] = {}
    for (source, _port), target in routes.items():
        back.setdefault(target, set()).add(source)
    found = {node_id for node_id, node in nodes.items() if _transactional(node.config)}
    todo = list(found)
    while todo:
        for source in back.get(todo.pop(), ()):
            if source not in found:
                found.add(source)
                todo.append(source)
    return frozenset(found)


def node_origins(graph: FlowGraph, registry: NodeRegistry) -> dict[str, Any]:
    """The distribution and version of each node type ``graph`` uses, to store at publish."""
    origins = {spec.type: registry.origin(spec.type) for spec in graph.nodes}
    return {type_id: o.as_json() for type_id, o in sorted(origins.items()) if o is not None}


def _substitute(type_id: str, recorded: Any, registry: NodeRegistry) -> str | None:
    """Why the installed ``type_id`` is not the one the version was published with, or None."""
    if not isinstance(recorded, dict) or registry.get(type_id) is None:
        return None
    now = registry.origin(type_id)
    if now is not None and now.distribution == recorded.get("distribution"):
        return None
    installed = f"{now.distribution} {now.version}" if now else "code outside any package"
    return (
        f"node type {type_id!r} was published from {recorded.get('distribution')} "
        f"{recorded.get('version')}, but the installed one comes from {installed}; "
        "the journey waits here until that package is installed again"
    )


def compile_version(
    version_id: int,
    flow_id: int,
    raw_graph: dict[str, Any],
    registry: NodeRegistry,
    origins: dict[str, Any] | None = None,
) -> CompiledFlow:
    """Build the runnable form of a stored graph. Never raises for a bad node.

    The graph was validated when it was published; a config stored for an older
    version of its node type is upgraded here (``NodeType.upgrade``). A node
    whose type has since disappeared, or is now offered by another distribution
    than ``origins`` recorded, is compiled ``held`` with a ``problem``: journeys
    reaching it wait there with that error, and no other package's code runs in
    its place. A node whose config no longer parses or upgrades is compiled with
    a ``problem`` so only journeys reaching it fail.
    """
    graph = FlowGraph.model_validate(raw_graph)
    nodes: dict[str, CompiledNode] = {}
    for spec in graph.nodes:
        node_type = registry.get(spec.type)
        substitute = _substitute(spec.type, (origins or {}).get(spec.type), registry)
        if node_type is None or substitute is not None:
            nodes[spec.id] = CompiledNode(
                spec.id, spec.type, None, None, frozenset(), None, None,
                problem=substitute or f"node type {spec.type!r} is not installed; "
                "the journey waits here until it is",
                held=True,
            )  # fmt: skip
            continue
        try:
            config = node_type.parse_config(upgrade_config(node_type, spec.config, spec.version))
        except (ValidationError, ValueError) as exc:
            nodes[spec.id] = CompiledNode(
                spec.id, spec.type, None, None, frozenset(), node_type.family, None,
                problem=f"configuration no longer valid: {exc}",
            )  # fmt: skip
            continue
        nodes[spec.id] = CompiledNode(
            id=spec.id,
            type_id=spec.type,
            node=node_type(),
            config=config,
            ports=frozenset(port.id for port in node_type.output_ports(config)),
            family=node_type.family,
            trigger=node_type.trigger(config),
            needs_events=node_type.needs_events,
        )
    compiled = list(nodes.values())
    routes = dict(graph.next_map)
    return CompiledFlow(
        version_id=version_id,
        flow_id=flow_id,
        settings=graph.settings,
        nodes=nodes,
        routes=routes,
        transactional_ahead=transactional_ahead(nodes, routes),
        triggers=tuple(n for n in compiled if n.family is Family.trigger and n.node is not None),
        goals=tuple(
            n for n in compiled if n.family is Family.goal and n.trigger and n.trigger.event_type
        ),
        condition_goals=tuple(
            n for n in compiled if n.family is Family.goal and n.trigger and n.trigger.audience
        ),
    )


class VersionCache:
    """Compiled versions by id, loaded on first use. Bounded, least recently used out."""

    def __init__(self, registry: NodeRegistry, size: int = 512) -> None:
        self.registry = registry
        self._size = size
        self._items: OrderedDict[int, CompiledFlow] = OrderedDict()

    def cached(self, version_id: int) -> CompiledFlow | None:
        item = self._items.get(version_id)
        if item is not None:
            self._items.move_to_end(version_id)
        return item

    async def get_many(self, session: AsyncSession, ids: set[int]) -> dict[int, CompiledFlow]:
        """Compiled versions for ``ids``, loading the missing ones in one query."""
        found = {vid: item for vid in ids if (item := self.cached(vid)) is not None}
        missing = ids - found.keys()
        if missing:
            rows = await session.execute(
                select(
                    FlowVersion.id, FlowVersion.flow_id, FlowVersion.graph, FlowVersion.node_origins
                ).where(FlowVersion.id.in_(missing))
            )
            for vid, flow_id, graph, origins in rows:
                compiled = compile_version(vid, flow_id, graph, self.registry, origins)
                found[vid] = self._put(compiled)
        return found

    async def get(self, session: AsyncSession, version_id: int) -> CompiledFlow:
        return (await self.get_many(session, {version_id}))[version_id]

    def _put(self, item: CompiledFlow) -> CompiledFlow:
        self._items[item.version_id] = item
        self._items.move_to_end(item.version_id)
        while len(self._items) > self._size:
            self._items.popitem(last=False)
        return item
