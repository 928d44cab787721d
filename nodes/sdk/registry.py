"""Discovery of node types through the ``touchflow.nodes`` entry-point group."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from nodes.sdk.node import NodeType
from nodes.sdk.types import Family

ENTRY_POINT_GROUP = "touchflow.nodes"
log = logging.getLogger(__name__)

AnyNodeType = type[NodeType[Any]]


@dataclass(frozen=True)
class LoadError:
    """A node type (or a whole package of them) that could not be loaded."""

    source: str
    message: str


@dataclass
class NodeRegistry:
    """All known node types by ``type_id``. Built once at start-up, then read-only."""

    types: dict[str, AnyNodeType] = field(default_factory=dict)
    errors: list[LoadError] = field(default_factory=list)

    def add(self, node_type: AnyNodeType, source: str = "code") -> None:
        problem = _declaration_problem(node_type)
        if problem:
            self.errors.append(LoadError(source, problem))
            log.error("node type from %s not loaded: %s", source, problem)
            return
        existing = self.types.get(node_type.type_id)
        if existing is not None and existing is not node_type:
            message = (
                f"type id {node_type.type_id!r} is already registered by {existing.__module__}"
            )
            self.errors.append(LoadError(source, message))
            log.error("node type from %s not loaded: %s", source, message)
            return
        self.types[node_type.type_id] = node_type

    def get(self, type_id: str) -> AnyNodeType | None:
        return self.types.get(type_id)

    def __contains__(self, type_id: object) -> bool:
        return type_id in self.types

    def __iter__(self) -> Iterator[AnyNodeType]:
        return iter(self.types.values())

    def by_family(self) -> dict[Family, list[AnyNodeType]]:
        grouped: dict[Family, list[AnyNodeType]] = {family: [] for family in Family}
        for node_type in sorted(self.types.values(), key=lambda t: t.name):
            grouped[node_type.family].append(node_type)
        return grouped


def _declaration_problem(node_type: object) -> str | None:
    if not (isinstance(node_type, type) and issubclass(node_type, NodeType)):
        return f"{node_type!r} is not a NodeType subclass"
    for attr in ("type_id", "name", "family"):
        if not hasattr(node_type, attr):
            return f"{node_type.__name__} does not declare {attr}"
    if getattr(node_type, "__abstractmethods__", None):
        return f"{node_type.__name__} does not implement run()"
    return None


def _load_entry_point(entry_point: EntryPoint) -> Iterable[object]:
    loaded = entry_point.load()
    if isinstance(loaded, type):
        return [loaded]
    if isinstance(loaded, Iterable):
        return list(loaded)
    raise TypeError(f"{entry_point.value} is neither a NodeType nor a list of them")


def discover(group: str = ENTRY_POINT_GROUP) -> NodeRegistry:
    """Load every node type declared in the entry-point group.

    A package that fails to import, or a type that is declared wrongly, is
    recorded in ``registry.errors`` and logged; it never takes the app down.
    """
    registry = NodeRegistry()
    for entry_point in sorted(entry_points(group=group), key=lambda ep: ep.name):
        source = f"{entry_point.name} ({entry_point.value})"
        try:
            candidates = _load_entry_point(entry_point)
        except Exception as exc:  # a broken plugin must not stop start-up
            registry.errors.append(LoadError(source, f"{type(exc).__name__}: {exc}"))
            log.exception("node package %s failed to load", source)
            continue
        for candidate in candidates:
            registry.add(candidate, source)  # type: ignore[arg-type]
    return registry
