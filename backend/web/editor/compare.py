"""What changed between two graphs (two versions, or a version and the draft)."""

from __future__ import annotations

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
