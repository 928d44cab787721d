"""What the canvas shows: nodes with their boxes and marks, curves between ports, the palette.

Built from the raw draft and the node registry only; every node type's look
(family, name, icon, colour, ports) comes from its declaration.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from backend.i18n import N_, _
from backend.i18n.problems import graph_problem
from backend.web.editor.geometry import (
    NODE_WIDTH,
    edge_path,
    midpoint,
    node_height,
    port_offset,
)
from backend.web.editor.ops import node_ports
from nodes.sdk import ICONS, Family, NodeRegistry
from runtime.graph import FlowGraph, GraphError, model_problems, validate_graph

FAMILY_LABELS = {
    Family.trigger: N_("Triggers"),
    Family.wait: N_("Waits"),
    Family.condition: N_("Conditions"),
    Family.selection: N_("Selections"),
    Family.split: N_("Splits"),
    Family.action: N_("Actions"),
    Family.goal: N_("Goals and exits"),
}


def icon_glyph(icon: str, name: str) -> str:
    return ICONS.get(icon, (name[:1] or "•").upper())


@dataclass(frozen=True)
class PortView:
    id: str
    label: str
    offset: float
    connected: bool


@dataclass(frozen=True)
class NodeView:
    id: str
    type_id: str
    type_name: str
    label: str
    family: str
    glyph: str
    color: str
    x: float
    y: float
    width: int
    height: int
    ports: tuple[PortView, ...]
    errors: tuple[str, ...]
    accepts_input: bool


@dataclass(frozen=True)
class EdgeView:
    source: str
    port: str
    target: str
    path: str
    label: str
    label_x: float
    label_y: float
    # Labelled only where the source has a choice of ports (yes/no, A/B, timeout).
    labelled: bool


@dataclass(frozen=True)
class CanvasView:
    nodes: list[NodeView]
    edges: list[EdgeView]
    flow_errors: list[str]
    node_errors: dict[str, list[GraphError]] = field(default_factory=dict)

    @property
    def problem_count(self) -> int:
        return len(self.flow_errors) + sum(len(v) for v in self.node_errors.values())


def graph_errors(raw: dict[str, Any], registry: NodeRegistry) -> list[GraphError]:
    """Every reason the draft cannot be published (what ``publish`` would refuse)."""
    try:
        graph = FlowGraph.model_validate(raw)
    except ValidationError as exc:
        return model_problems(exc)
    return validate_graph(graph, registry)


def _error_text(error: GraphError) -> str:
    message = graph_problem(error)
    return f"{error.field}: {message}" if error.field else message


def build_canvas(raw: dict[str, Any], registry: NodeRegistry) -> CanvasView:
    nodes_raw: list[dict[str, Any]] = [n for n in raw.get("nodes", []) if isinstance(n, dict)]
    edges_raw: list[dict[str, Any]] = [e for e in raw.get("edges", []) if isinstance(e, dict)]
    by_node: dict[str, list[GraphError]] = defaultdict(list)
    flow_errors: list[str] = []
    known = {str(n.get("id")) for n in nodes_raw}
    for error in graph_errors(raw, registry):
        if error.node_id in known:
            by_node[str(error.node_id)].append(error)
        else:
            flow_errors.append(_error_text(error))
    connected = {(str(e.get("source")), str(e.get("port"))) for e in edges_raw}

    nodes: list[NodeView] = []
    anchors: dict[tuple[str, str], tuple[float, float]] = {}
    port_labels: dict[tuple[str, str], str] = {}
    port_counts: dict[str, int] = {}
    inputs: dict[str, tuple[float, float]] = {}
    for raw_node in nodes_raw:
        node_id = str(raw_node.get("id"))
        node_type = registry.get(str(raw_node.get("type")))
        ports = node_ports(raw_node, registry)
        height = node_height(len(ports))
        port_counts[node_id] = len(ports)
        position = raw_node.get("position") or {}
        x, y = float(position.get("x", 0)), float(position.get("y", 0))
        port_views = []
        for index, port in enumerate(ports):
            offset = port_offset(index, len(ports), height)
            anchors[(node_id, port.id)] = (x + NODE_WIDTH, y + offset)
            label = _(port.label) if port.label else port.id
            port_labels[(node_id, port.id)] = label
            port_views.append(PortView(port.id, label, offset, (node_id, port.id) in connected))
        inputs[node_id] = (x, y + height / 2)
        type_name = _(node_type.name) if node_type else str(raw_node.get("type"))
        nodes.append(
            NodeView(
                id=node_id,
                type_id=str(raw_node.get("type")),
                type_name=type_name,
                label=str(raw_node.get("label") or ""),
                family=node_type.family.value if node_type else "unknown",
                glyph=icon_glyph(node_type.icon, type_name) if node_type else "!",
                color=node_type.color if node_type else "#b42318",
                x=x,
                y=y,
                width=NODE_WIDTH,
                height=height,
                ports=tuple(port_views),
                errors=tuple(_error_text(e) for e in by_node.get(node_id, ())),
                accepts_input=node_type is not None and node_type.family is not Family.trigger,
            )
        )

    edges = []
    for raw_edge in edges_raw:
        source, port_id, target = (str(raw_edge.get(k)) for k in ("source", "port", "target"))
        start, end = anchors.get((source, port_id)), inputs.get(target)
        if start is None or end is None:
            continue  # a dangling edge: validation lists it against its node
        label_x, label_y = midpoint(*start, *end)
        edges.append(
            EdgeView(
                source,
                port_id,
                target,
                edge_path(*start, *end),
                port_labels.get((source, port_id), port_id),
                label_x,
                label_y,
                port_counts.get(source, 0) > 1,
            )
        )
    return CanvasView(nodes, edges, flow_errors, dict(by_node))


@dataclass(frozen=True)
class PaletteItem:
    type_id: str
    name: str
    description: str
    glyph: str
    color: str


def palette(registry: NodeRegistry) -> list[tuple[str, str, list[PaletteItem]]]:
    """``(family, family label, items)`` for every family that has a registered type."""
    groups = []
    for family, types in registry.by_family().items():
        if not types:
            continue
        items = [
            PaletteItem(t.type_id, _(t.name), _(t.description), icon_glyph(t.icon, t.name), t.color)
            for t in types
        ]
        groups.append((family.value, _(FAMILY_LABELS[family]), items))
    return groups
