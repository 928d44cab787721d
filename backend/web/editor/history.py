"""Undo and redo of draft edits, kept in the web process's memory.

Each flow has an undo and a redo stack of graphs, valid for one draft
revision: the one this process saved last. Undo only applies while the
draft is still at that revision, and it is saved like any edit (a new
revision, with the same conflict check), so undo can never overwrite
someone else's change. The history is per process and bounded (snapshots
are stored compressed, within a byte budget, least recently edited flows
dropped first): after a restart, or on another web process, there is
simply nothing to undo.
"""

from __future__ import annotations

import json
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

DEPTH = 50
BUDGET_BYTES = 32 * 1024 * 1024


def _pack(graph: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(graph, separators=(",", ":")).encode(), 1)


def _unpack(blob: bytes) -> dict[str, Any]:
    graph: dict[str, Any] = json.loads(zlib.decompress(blob))
    return graph


@dataclass
class _Stacks:
    revision: int
    undo: deque[bytes] = field(default_factory=lambda: deque(maxlen=DEPTH))
    redo: deque[bytes] = field(default_factory=lambda: deque(maxlen=DEPTH))

    @property
    def size(self) -> int:
        return sum(map(len, self.undo)) + sum(map(len, self.redo))


class EditHistory:
    """Undo/redo stacks per flow, within ``budget`` bytes of compressed snapshots."""

    def __init__(self, budget: int = BUDGET_BYTES) -> None:
        self._flows: OrderedDict[int, _Stacks] = OrderedDict()
        self._budget = budget

    def _current(self, flow_id: int, revision: int) -> _Stacks | None:
        stacks = self._flows.get(flow_id)
        return stacks if stacks is not None and stacks.revision == revision else None

    def _trim(self) -> None:
        total = sum(stacks.size for stacks in self._flows.values())
        while total > self._budget and self._flows:
            oldest_id, oldest = next(iter(self._flows.items()))
            if oldest.redo:
                total -= len(oldest.redo.popleft())
            elif oldest.undo:
                total -= len(oldest.undo.popleft())
            else:
                del self._flows[oldest_id]

    def edited(self, flow_id: int, before: dict[str, Any], revision: int) -> None:
        """A normal edit saved ``revision``; ``before`` was the graph it replaced."""
        stacks = self._current(flow_id, revision - 1) or _Stacks(revision)
        stacks.undo.append(_pack(before))
        stacks.redo.clear()
        stacks.revision = revision
        self._flows.pop(flow_id, None)
        self._flows[flow_id] = stacks
        self._trim()

    def can_undo(self, flow_id: int, revision: int) -> bool:
        stacks = self._current(flow_id, revision)
        return bool(stacks and stacks.undo)

    def can_redo(self, flow_id: int, revision: int) -> bool:
        stacks = self._current(flow_id, revision)
        return bool(stacks and stacks.redo)

    def peek(self, flow_id: int, revision: int, *, redo: bool) -> dict[str, Any] | None:
        """The graph undo (or redo) would restore while the draft is at ``revision``."""
        stacks = self._current(flow_id, revision)
        stack = (stacks.redo if redo else stacks.undo) if stacks else None
        return _unpack(stack[-1]) if stack else None

    def stepped(self, flow_id: int, current: dict[str, Any], revision: int, *, redo: bool) -> None:
        """The undo (or redo) from ``current`` was saved as ``revision``."""
        stacks = self._flows[flow_id]
        taken, other = (stacks.redo, stacks.undo) if redo else (stacks.undo, stacks.redo)
        taken.pop()
        other.append(_pack(current))
        stacks.revision = revision
        self._trim()
