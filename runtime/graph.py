"""The flow graph: nodes with typed config, edges from output ports, and its validation.

A flow version is a ``FlowGraph`` that passed ``validate_graph`` with no errors.
Validation is pure: it needs the graph and the node registry, nothing else.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nodes.sdk import Family, NodeRegistry, Port, upgrade_config
from runtime.goals import FlowGoal

NODE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class Position(BaseModel):
    x: float = 0
    y: float = 0


class NodeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=NODE_ID_PATTERN)
    type: str
    # The node type's version the config was written for (None: before versions were stored).
    version: int | None = Field(default=None, ge=1)
    config: dict[str, Any] = Field(default_factory=dict)
    label: str = ""
    position: Position = Field(default_factory=Position)


class EdgeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    port: str = "next"
    target: str


ReentryPolicy = Literal["once", "once_at_a_time", "after_days"]
ExitRule = Literal["goal_reached", "unsubscribed", "left_audience", "flow_stopped"]
DEFAULT_EXITS: tuple[ExitRule, ...] = ("goal_reached", "unsubscribed", "flow_stopped")


class FlowSettings(BaseModel):
    """Flow-wide policy, versioned with the graph so a running journey keeps its rules."""

    model_config = ConfigDict(extra="forbid")

    reentry: ReentryPolicy = "once_at_a_time"
    reentry_days: int | None = Field(default=None, ge=1, le=3650)
    exit_on: list[ExitRule] = Field(default_factory=lambda: list(DEFAULT_EXITS))
    # Rule (runtime.rules JSON) that defines the flow's audience; used by "left_audience".
    audience: dict[str, Any] | None = None
    # What success means for this flow (conversion reports, A/B verdicts); None: goal nodes only.
    goal: FlowGoal | None = None

    @model_validator(mode="after")
    def _days_with_after_days(self) -> FlowSettings:
        if self.reentry == "after_days" and self.reentry_days is None:
            raise ValueError("re-entry 'again after N days' needs the number of days")
        return self


class FlowGraph(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nodes: list[NodeSpec] = Field(default_factory=list)
    edges: list[EdgeSpec] = Field(default_factory=list)
    settings: FlowSettings = Field(default_factory=FlowSettings)

    @cached_property
    def node_map(self) -> dict[str, NodeSpec]:
        return {node.id: node for node in self.nodes}

    @cached_property
    def next_map(self) -> dict[tuple[str, str], str]:
        """``(node id, port) -> target node id``: the runtime's only routing table."""
        return {(edge.source, edge.port): edge.target for edge in self.edges}

    def target(self, node_id: str, port: str) -> str | None:
        return self.next_map.get((node_id, port))


@dataclass(frozen=True)
class GraphError:
    """One problem, tied to a node (or edge) when it has one, for the editor to mark.

    ``message`` is the English text. So that the editor can show it in the reader's
    language, a message with values keeps its ``template`` (``{name}`` placeholders)
    and the ``params`` filled in; a config error keeps pydantic's error ``code``
    with its context as ``params``.
    """

    message: str
    node_id: str | None = None
    field: str | None = None
    template: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    code: str | None = None

    def __str__(self) -> str:
        where = f"node {self.node_id!r}" if self.node_id else "flow"
        if self.field:
            where += f", field {self.field!r}"
        return f"{where}: {self.message}"


def _problem(template: str, node_id: str | None = None, **params: str) -> GraphError:
    return GraphError(
        template.format(**params), node_id, template=template, params=tuple(params.items())
    )


def _pydantic_problem(err: Any, node_id: str | None, field: str | None) -> GraphError:
    context = tuple((str(k), str(v)) for k, v in (err.get("ctx") or {}).items())
    return GraphError(err["msg"], node_id, field, params=context, code=err["type"])


def model_problems(exc: ValidationError) -> list[GraphError]:
    """A graph's shape errors (pydantic's), each with the place it is about."""
    return [
        _pydantic_problem(err, None, ".".join(str(p) for p in err["loc"]) or None)
        for err in exc.errors()
    ]


class InvalidGraph(ValueError):
    def __init__(self, errors: list[GraphError]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = errors


def upgrade_graph(graph: FlowGraph, registry: NodeRegistry) -> FlowGraph:
    """The graph with every installed node's config upgraded to its type's version.

    Nodes of unknown types, and nodes whose upgrade fails, stay as they are
    (validation reports them). Publishing stores the upgraded graph, and
    loading a version upgrades what older versions stored.
    """
    nodes = []
    for node in graph.nodes:
        node_type = registry.get(node.type)
        if node_type is not None and node.version != node_type.version:
            try:
                config = upgrade_config(node_type, node.config, node.version)
            except ValueError:
                nodes.append(node)
                continue
            node = node.model_copy(update={"config": config, "version": node_type.version})
        nodes.append(node)
    # A new model, not a copy: the copy would keep the cached node map of the old nodes.
    return FlowGraph(nodes=nodes, edges=graph.edges, settings=graph.settings)


def _config_errors(node: NodeSpec, registry: NodeRegistry) -> tuple[list[GraphError], Any]:
    node_type = registry.get(node.type)
    if node_type is None:
        return [_problem("unknown node type {type!r}", node.id, type=node.type)], None
    try:
        raw = upgrade_config(node_type, node.config, node.version)
    except ValueError as exc:
        return [GraphError(str(exc), node.id)], None
    try:
        config = node_type.parse_config(raw)
    except ValidationError as exc:
        return [
            _pydantic_problem(err, node.id, ".".join(str(p) for p in err["loc"]) or None)
            for err in exc.errors()
        ], None
    return [], config


def _cycle_without_wait(
    nodes: Iterable[str], successors: dict[str, set[str]], waits: set[str]
) -> list[str] | None:
    """Find a cycle made only of non-wait nodes (an infinite loop in one step)."""
    graph = {n: {s for s in successors.get(n, set()) if s not in waits} for n in nodes}
    graph = {n: succ for n, succ in graph.items() if n not in waits}
    state: dict[str, int] = {}
    for start in graph:
        if state.get(start):
            continue
        stack: list[tuple[str, Iterable[str]]] = [(start, iter(graph[start]))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(iter(children), None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            if state.get(child) == 1:
                return path[path.index(child) :]
            if not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(graph[child])))
    return None


def validate_graph(graph: FlowGraph, registry: NodeRegistry) -> list[GraphError]:
    """Every reason this graph cannot be published; an empty list means it can."""
    errors: list[GraphError] = []
    seen: set[str] = set()
    for node in graph.nodes:
        if node.id in seen:
            errors.append(GraphError("two nodes share this id", node.id))
        seen.add(node.id)

    ports: dict[str, tuple[Port, ...]] = {}
    families: dict[str, Family] = {}
    # Goals reached by an event or a contact change need no incoming connection: the
    # runtime moves journeys there.
    event_goals: list[str] = []
    for node in graph.nodes:
        node_errors, config = _config_errors(node, registry)
        errors.extend(node_errors)
        node_type = registry.get(node.type)
        if node_type is not None:
            families[node.id] = node_type.family
            if config is not None:
                ports[node.id] = node_type.output_ports(config)
                goal_trigger = (
                    node_type.trigger(config) if node_type.family is Family.goal else None
                )
                if goal_trigger is not None and (goal_trigger.event_type or goal_trigger.audience):
                    event_goals.append(node.id)

    successors: dict[str, set[str]] = defaultdict(set)
    used: set[tuple[str, str]] = set()
    for edge in graph.edges:
        if edge.source not in graph.node_map:
            errors.append(_problem("an edge starts at missing node {source!r}", source=edge.source))
            continue
        if edge.target not in graph.node_map:
            errors.append(
                _problem(
                    "port {port!r} leads to missing node {target!r}",
                    edge.source,
                    port=edge.port,
                    target=edge.target,
                )
            )
            continue
        known = ports.get(edge.source)
        if known is not None and edge.port not in {p.id for p in known}:
            errors.append(
                _problem("this node has no output port {port!r}", edge.source, port=edge.port)
            )
        if (edge.source, edge.port) in used:
            errors.append(_problem("port {port!r} is connected twice", edge.source, port=edge.port))
        used.add((edge.source, edge.port))
        if families.get(edge.target) is Family.trigger:
            errors.append(GraphError("a trigger cannot have incoming connections", edge.target))
        successors[edge.source].add(edge.target)

    triggers = [n.id for n in graph.nodes if families.get(n.id) is Family.trigger]
    if not triggers:
        errors.append(GraphError("the flow needs a trigger to enroll anyone"))
    reachable: set[str] = set(triggers) | set(event_goals)
    queue = deque([*triggers, *event_goals])
    while queue:
        for nxt in successors.get(queue.popleft(), set()):
            if nxt not in reachable:
                reachable.add(nxt)
                queue.append(nxt)
    for node in graph.nodes:
        if node.id not in reachable and triggers:
            errors.append(GraphError("no trigger leads to this node", node.id))

    waits = {node_id for node_id, family in families.items() if family is Family.wait}
    cycle = _cycle_without_wait(graph.node_map, successors, waits)
    if cycle:
        loop = " -> ".join([*cycle, cycle[0]])
        errors.append(
            _problem("this loop has no wait and would never pause: {loop}", cycle[0], loop=loop)
        )
    return errors


def parse_graph(raw: dict[str, Any], registry: NodeRegistry) -> FlowGraph:
    """Parse, upgrade old node configs (``upgrade_graph``) and validate.

    Raises ``InvalidGraph`` listing every problem.
    """
    try:
        graph = FlowGraph.model_validate(raw)
    except ValidationError as exc:
        raise InvalidGraph(model_problems(exc)) from exc
    errors = validate_graph(graph, registry)
    if errors:
        raise InvalidGraph(errors)
    return upgrade_graph(graph, registry)
