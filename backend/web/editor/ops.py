"""Edits to a draft graph, as pure functions from one raw graph (JSON dict) to the next.

Each edit returns a new graph and never changes its input, so the previous
draft can be kept for undo. An edit that cannot make sense (a connection to
a node that is gone, a port the node does not have) raises ``EditRefused``
with a sentence for the marketer; an edit that merely leaves the draft
unpublishable (an empty required field) is allowed, and validation marks it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from backend.i18n import _
from backend.web.editor.geometry import NODE_WIDTH, node_height
from nodes.sdk import Family, NodeRegistry, NodeType, Port, upgrade_config
from runtime.graph import FlowGraph

_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
MAX_NODES = 2000
COORDINATE_LIMIT = 1_000_000.0
LABEL_MAX = 120


class EditRefused(ValueError):
    """The edit does not apply to this draft; the message says why, for people."""


def _copy(graph: dict[str, Any]) -> dict[str, Any]:
    # Drafts are plain JSON; a JSON round trip copies them several times faster than deepcopy.
    fresh: dict[str, Any] = json.loads(json.dumps(graph))
    fresh.setdefault("nodes", [])
    fresh.setdefault("edges", [])
    return fresh


def _node(graph: dict[str, Any], node_id: str) -> dict[str, Any]:
    for node in graph["nodes"]:
        if node.get("id") == node_id:
            return node  # type: ignore[no-any-return]
    raise EditRefused(_("That step is no longer on the canvas; it may have been deleted."))


def _coordinate(value: float) -> float:
    if not -COORDINATE_LIMIT <= value <= COORDINATE_LIMIT:
        raise EditRefused(_("That position is too far from the rest of the flow."))
    return round(value, 1)


def current_config(node: dict[str, Any], node_type: type[NodeType[Any]]) -> dict[str, Any]:
    """The node's raw config, upgraded to its type's version (as stored when that fails)."""
    raw = dict(node.get("config") or {})
    try:
        return upgrade_config(node_type, raw, node.get("version"))
    except ValueError:
        return raw


def node_ports(node: dict[str, Any], registry: NodeRegistry) -> tuple[Port, ...]:
    """A node's output ports: from its config when valid, else the type's static ports."""
    node_type = registry.get(str(node.get("type")))
    if node_type is None:
        return ()
    try:
        config = node_type.parse_config(current_config(node, node_type))
    except ValidationError:
        return node_type.ports
    return node_type.output_ports(config)


def new_node_id(graph: dict[str, Any], type_id: str) -> str:
    """A readable id from the type (``email``, ``email_2``...), unique in the graph."""
    base = _ID_CHARS.sub("_", type_id.rsplit(".", 1)[-1]).strip("_")[:56] or "node"
    taken = {node.get("id") for node in graph.get("nodes", [])}
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = f"{base}_{number}"
    return candidate


def add_node(
    graph: dict[str, Any], type_id: str, x: float, y: float, registry: NodeRegistry
) -> tuple[dict[str, Any], str]:
    """Drop a new node of ``type_id`` at ``(x, y)``; returns the graph and the new node's id."""
    node_type = registry.get(type_id)
    if node_type is None:
        raise EditRefused(_("There is no step type %(type)s.") % {"type": type_id})
    fresh = _copy(graph)
    if len(fresh["nodes"]) >= MAX_NODES:
        raise EditRefused(_("A flow can have at most %(num)d steps.") % {"num": MAX_NODES})
    node_id = new_node_id(fresh, type_id)
    fresh["nodes"].append(
        {
            "id": node_id,
            "type": type_id,
            "version": node_type.version,
            "config": {},
            "label": "",
            "position": {"x": _coordinate(x), "y": _coordinate(y)},
        }
    )
    return fresh, node_id


def move_nodes(graph: dict[str, Any], positions: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """Move one node or a selection of them together."""
    fresh = _copy(graph)
    for node_id, (x, y) in positions.items():
        _node(fresh, node_id)["position"] = {"x": _coordinate(x), "y": _coordinate(y)}
    return fresh


def move_node(graph: dict[str, Any], node_id: str, x: float, y: float) -> dict[str, Any]:
    return move_nodes(graph, {node_id: (x, y)})


def delete_nodes(graph: dict[str, Any], node_ids: set[str]) -> dict[str, Any]:
    """Remove the nodes and every connection into or out of them."""
    fresh = _copy(graph)
    for node_id in node_ids:
        _node(fresh, node_id)
    fresh["nodes"] = [node for node in fresh["nodes"] if node.get("id") not in node_ids]
    fresh["edges"] = [
        edge
        for edge in fresh["edges"]
        if edge.get("source") not in node_ids and edge.get("target") not in node_ids
    ]
    return fresh


def rename(graph: dict[str, Any], node_id: str, label: str) -> dict[str, Any]:
    """Give the node a new label (an empty one shows the type's name again); config untouched."""
    if len(label) > LABEL_MAX:
        raise EditRefused(_("Keep the label under %(num)d characters.") % {"num": LABEL_MAX})
    fresh = _copy(graph)
    _node(fresh, node_id)["label"] = label
    return fresh


def delete_node(graph: dict[str, Any], node_id: str) -> dict[str, Any]:
    return delete_nodes(graph, {node_id})


def paste(
    graph: dict[str, Any],
    source: dict[str, Any],
    node_ids: list[str],
    offset: tuple[float, float],
) -> tuple[dict[str, Any], list[str]]:
    """Copy ``node_ids`` of ``source`` (this or another flow's draft) into ``graph``.

    The copies get fresh ids, keep their configs, labels and the connections
    among themselves, and sit ``offset`` away from the originals.
    """
    wanted = set(node_ids)
    originals = [n for n in source.get("nodes", []) if n.get("id") in wanted]
    if not originals:
        raise EditRefused(_("The copied steps are no longer there to paste."))
    fresh = _copy(graph)
    if len(fresh["nodes"]) + len(originals) > MAX_NODES:
        raise EditRefused(_("A flow can have at most %(num)d steps.") % {"num": MAX_NODES})
    renamed: dict[str, str] = {}
    for original in originals:
        copy = json.loads(json.dumps(original))
        copy["id"] = renamed[original["id"]] = new_node_id(fresh, str(original.get("type")))
        position = original.get("position") or {}
        copy["position"] = {
            "x": _coordinate(float(position.get("x", 0)) + offset[0]),
            "y": _coordinate(float(position.get("y", 0)) + offset[1]),
        }
        fresh["nodes"].append(copy)
    for edge in source.get("edges", []):
        if edge.get("source") in renamed and edge.get("target") in renamed:
            fresh["edges"].append(
                {
                    "source": renamed[edge["source"]],
                    "port": edge.get("port", "next"),
                    "target": renamed[edge["target"]],
                }
            )
    return fresh, list(renamed.values())


def connect(
    graph: dict[str, Any], source: str, port: str, target: str, registry: NodeRegistry
) -> dict[str, Any]:
    """Connect ``source``'s output ``port`` to ``target``, replacing that port's old connection."""
    fresh = _copy(graph)
    source_node = _node(fresh, source)
    target_node = _node(fresh, target)
    if source == target:
        raise EditRefused(_("A step cannot lead to itself; add a wait and loop through it."))
    if port not in {p.id for p in node_ports(source_node, registry)}:
        raise EditRefused(_("This step has no output called %(port)s.") % {"port": port})
    target_type = registry.get(str(target_node.get("type")))
    if target_type is not None and target_type.family is Family.trigger:
        raise EditRefused(_("A trigger starts the flow, so nothing can lead into it."))
    fresh["edges"] = [
        edge
        for edge in fresh["edges"]
        if not (edge.get("source") == source and edge.get("port") == port)
    ]
    fresh["edges"].append({"source": source, "port": port, "target": target})
    return fresh


def disconnect(graph: dict[str, Any], source: str, port: str) -> dict[str, Any]:
    fresh = _copy(graph)
    kept = [
        edge
        for edge in fresh["edges"]
        if not (edge.get("source") == source and edge.get("port") == port)
    ]
    if len(kept) == len(fresh["edges"]):
        raise EditRefused(_("That connection is no longer there."))
    fresh["edges"] = kept
    return fresh


def configure(
    graph: dict[str, Any],
    node_id: str,
    config: dict[str, Any],
    label: str,
    version: int | None = None,
) -> dict[str, Any]:
    """Replace the node's config and label (validation happens on the result, not here).

    ``version`` is the node type's version the form was made for (the current one).
    """
    if len(label) > LABEL_MAX:
        raise EditRefused(_("Keep the label under %(num)d characters.") % {"num": LABEL_MAX})
    fresh = _copy(graph)
    node = _node(fresh, node_id)
    node["config"] = config
    node["label"] = label
    if version is not None:
        node["version"] = version
    return fresh


LAYER_GAP = 100
ROW_GAP = 50
ORIGIN = 40.0


def tidy(graph: dict[str, Any], registry: NodeRegistry) -> dict[str, Any]:
    """Lay the graph out left to right: triggers first, each step one column after its parent.

    Columns come from a breadth-first walk (loops do not push nodes further
    right forever); steps nothing leads to start columns of their own.
    """
    fresh = _copy(graph)
    nodes = fresh["nodes"]
    successors: dict[str, list[str]] = {}
    for edge in fresh["edges"]:
        successors.setdefault(str(edge.get("source")), []).append(str(edge.get("target")))
    triggers = [
        str(n.get("id"))
        for n in nodes
        if (t := registry.get(str(n.get("type")))) is not None and t.family is Family.trigger
    ]
    column: dict[str, int] = {}
    order: list[str] = []
    for root in [*triggers, *(str(n.get("id")) for n in nodes)]:
        if root in column:
            continue
        column[root] = 0
        order.append(root)
        queue = [root]
        while queue:
            current = queue.pop(0)
            for nxt in successors.get(current, []):
                if nxt not in column:
                    column[nxt] = column[current] + 1
                    order.append(nxt)
                    queue.append(nxt)
    by_id = {str(n.get("id")): n for n in nodes}
    next_y: dict[int, float] = {}
    for node_id in order:
        node = by_id.get(node_id)
        if node is None:
            continue  # an edge to a missing node; validation reports it
        col = column[node_id]
        y = next_y.get(col, ORIGIN)
        node["position"] = {"x": ORIGIN + col * (NODE_WIDTH + LAYER_GAP), "y": y}
        next_y[col] = y + node_height(len(node_ports(node, registry))) + ROW_GAP
    return fresh


def replace_graph(raw: Any) -> dict[str, Any]:
    """A whole graph from outside (an import, an old version), checked for its shape only.

    Configs may be incomplete, as in any draft; ids, edges and settings must parse.
    """
    if not isinstance(raw, dict):
        raise EditRefused(
            _("This is not a Touchflow flow: expected an object with nodes and edges.")
        )
    try:
        graph = FlowGraph.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise EditRefused(
            _("This is not a Touchflow flow (%(where)s: %(problem)s).")
            % {"where": where, "problem": first["msg"]}
        ) from None
    if len(graph.nodes) > MAX_NODES:
        raise EditRefused(_("A flow can have at most %(num)d steps.") % {"num": MAX_NODES})
    return graph.model_dump(mode="json")
