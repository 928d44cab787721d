""" "Send everyone down the winner": the graph with a split replaced by its winning branch.

Pure: a graph in, a graph out. Connections that led into the split lead to
the first node of the winning branch instead (or nowhere, if the branch was
empty: the journey ends where the split stood); the split goes, and with it
every node only the losing branches reached. Nodes the branches shared
further on stay.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["WinnerError", "route_to_winner"]


class WinnerError(ValueError):
    """The split or its branch is not in the graph."""


def route_to_winner(graph: dict[str, Any], split_id: str, port: str) -> dict[str, Any]:
    """A copy of ``graph`` in which everyone who reaches ``split_id`` takes ``port``."""
    nodes = {str(n["id"]): n for n in graph.get("nodes", [])}
    if split_id not in nodes:
        raise WinnerError(f"there is no node {split_id!r}")
    edges = [dict(e) for e in graph.get("edges", [])]
    leaving = {
        str(e.get("port", "next")): str(e["target"]) for e in edges if e["source"] == split_id
    }
    if port not in leaving and port not in _ports_of(nodes[split_id]):
        raise WinnerError(f"the split has no branch {port!r}")
    winner = leaving.get(port)
    kept: list[dict[str, Any]] = []
    for edge in edges:
        if edge["source"] == split_id:
            continue
        if edge["target"] == split_id:
            if winner is None:
                continue
            edge["target"] = winner
        kept.append(edge)
    starts = [
        node_id
        for node_id in nodes
        if node_id != split_id and not any(e["target"] == node_id for e in edges)
    ]
    reachable = _reachable(starts, kept)
    return {
        **graph,
        "nodes": [dict(nodes[n]) for n in nodes if n in reachable],
        "edges": [e for e in kept if e["source"] in reachable and e["target"] in reachable],
    }


def _ports_of(node: dict[str, Any]) -> set[str]:
    config = node.get("config") or {}
    ports = {str(v.get("key")) for v in config.get("variants") or [] if isinstance(v, dict)}
    return ports | ({"holdout"} if config.get("holdout_percent") else set())


def _reachable(starts: list[str], edges: list[dict[str, Any]]) -> set[str]:
    """Nodes reachable from the nodes nothing led into before (triggers, event goals)."""
    successors: dict[str, list[str]] = {}
    for edge in edges:
        successors.setdefault(edge["source"], []).append(edge["target"])
    seen = set(starts)
    queue = deque(starts)
    while queue:
        for nxt in successors.get(queue.popleft(), []):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen
