"""What changed between two graphs (two versions, or a version and the draft, or a publish's
audit entry)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from runtime.graph import FlowSettings


@dataclass(frozen=True)
class GraphDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[tuple[str, list[str]]] = field(default_factory=list)  # node id, what changed
    edges_added: list[tuple[str, str, str]] = field(default_factory=list)
    edges_removed: list[tuple[str, str, str]] = field(default_factory=list)
    settings_changed: bool = False

    @property
    def empty(self) -> bool:
        return not (
            self.added
            or self.removed
            or self.changed
            or self.edges_added
            or self.edges_removed
            or self.settings_changed
        )


def _edges(graph: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (str(e.get("source")), str(e.get("port", "next")), str(e.get("target")))
        for e in graph.get("edges", [])
    }


def _settings(graph: dict[str, Any]) -> Any:
    raw = graph.get("settings") or {}
    try:
        return FlowSettings.model_validate(raw).model_dump()
    except ValidationError:
        return raw


def diff_graphs(old: dict[str, Any], new: dict[str, Any]) -> GraphDiff:
    """Nodes and connections added, removed or changed from ``old`` to ``new``.

    Moving a node is not a change: positions are layout, not behaviour.
    """
    before = {str(n.get("id")): n for n in old.get("nodes", [])}
    after = {str(n.get("id")): n for n in new.get("nodes", [])}
    changed = []
    for node_id in sorted(before.keys() & after.keys()):
        parts = [
            key
            for key in ("type", "config", "label")
            if before[node_id].get(key) != after[node_id].get(key)
        ]
        if parts:
            changed.append((node_id, parts))
    return GraphDiff(
        added=sorted(after.keys() - before.keys()),
        removed=sorted(before.keys() - after.keys()),
        changed=changed,
        edges_added=sorted(_edges(new) - _edges(old)),
        edges_removed=sorted(_edges(old) - _edges(new)),
        settings_changed=_settings(old) != _settings(new),
    )


EDGE_KEYS = ("source", "port", "target")
# An audit entry keeps each changed value up to this many characters (email bodies are long).
VALUE_LIMIT = 300


def _shown(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= VALUE_LIMIT else value[:VALUE_LIMIT] + "…"
    if isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        return value if len(text) <= VALUE_LIMIT else text[:VALUE_LIMIT] + "…"
    return value


def _changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"key": {"from": ..., "to": ...}}`` for every top-level key that differs."""
    return {
        f"{prefix}{key}": {"from": _shown(old.get(key)), "to": _shown(new.get(key))}
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    }


def _node_ref(node: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(node.get("id")), "type": node.get("type"), "label": node.get("label") or ""}


def audit_diff(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The publish audit entry's diff: nodes, connections and settings added, removed or changed.

    ``old`` is the previous version's graph (None for the first version, where
    everything counts as added). Changed values keep their before and after.
    """
    old = old or {"nodes": [], "edges": []}
    summary = diff_graphs(old, new)
    before = {str(n.get("id")): n for n in old.get("nodes", [])}
    after = {str(n.get("id")): n for n in new.get("nodes", [])}
    changed = []
    for node_id, _parts in summary.changed:
        was, now = before[node_id], after[node_id]
        changes = _changes(
            {k: was.get(k) for k in ("type", "label")}, {k: now.get(k) for k in ("type", "label")}
        )
        changes.update(_changes(was.get("config") or {}, now.get("config") or {}, "config."))
        changed.append({**_node_ref(now), "changes": changes})
    return {
        "nodes_added": [_node_ref(after[n]) for n in summary.added],
        "nodes_removed": [_node_ref(before[n]) for n in summary.removed],
        "nodes_changed": changed,
        "edges_added": [dict(zip(EDGE_KEYS, e, strict=True)) for e in summary.edges_added],
        "edges_removed": [dict(zip(EDGE_KEYS, e, strict=True)) for e in summary.edges_removed],
        "settings_changed": _changes(
            old.get("settings") or {} if summary.settings_changed else {},
            new.get("settings") or {} if summary.settings_changed else {},
        ),
    }
