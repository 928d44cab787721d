"""Discovery of node types through the ``touchflow.nodes`` entry-point group.

Each type is remembered with the distribution (installed package) and version
that offered it. A ``type_id`` offered by two distributions is loaded from
neither: which one would win depends on load order, and a published flow
would silently run another package's code. Both are reported in ``errors``
(the Settings page shows them) until one is uninstalled.
"""

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


@dataclass(frozen=True)
class Origin:
    """The installed distribution a node type came from, and its version."""

    distribution: str
    version: str

    def as_json(self) -> dict[str, str]:
        return {"distribution": self.distribution, "version": self.version}


@dataclass
class NodeRegistry:
    """All known node types by ``type_id``. Built once at start-up, then read-only.

    ``origins`` holds the distribution of each type discovered through an entry
    point (types added in code, as tests do, have none).
    """

    types: dict[str, AnyNodeType] = field(default_factory=dict)
    errors: list[LoadError] = field(default_factory=list)
    origins: dict[str, Origin] = field(default_factory=dict)

    def origin(self, type_id: str) -> Origin | None:
        return self.origins.get(type_id)

    def add(
        self, node_type: AnyNodeType, source: str = "code", origin: Origin | None = None
    ) -> None:
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
        if origin is not None:
            self.origins[node_type.type_id] = origin

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


_origins: dict[str, Origin] = {}


def _origin(entry_point: EntryPoint) -> Origin:
    dist = entry_point.dist
    if dist is None:
        return Origin(f"entry point {entry_point.name}", "")
    # Reading a distribution's metadata parses its METADATA file each time; an
    # installed version has a folder of its own, so the folder names the answer.
    where = str(getattr(dist, "_path", ""))
    found = _origins.get(where) if where else None
    if found is None:
        found = Origin(dist.metadata["Name"] or dist.name, dist.version)
        if where:
            _origins[where] = found
    return found


def discover(group: str = ENTRY_POINT_GROUP) -> NodeRegistry:
    """Load every node type declared in the entry-point group.

    A package that fails to import, or a type that is declared wrongly, is
    recorded in ``registry.errors`` and logged; it never takes the app down.
    A ``type_id`` that two distributions offer is refused for both.
    """
    return register_all(sorted(entry_points(group=group), key=lambda ep: ep.name))


def register_all(points: Iterable[EntryPoint]) -> NodeRegistry:
    """The registry of the node types ``points`` declare (``discover`` on given entry points)."""
    registry = NodeRegistry()
    found: list[tuple[object, str, Origin]] = []
    for entry_point in points:
        source = f"{entry_point.name} ({entry_point.value})"
        try:
            candidates = _load_entry_point(entry_point)
        except Exception as exc:  # a broken plugin must not stop start-up
            registry.errors.append(LoadError(source, f"{type(exc).__name__}: {exc}"))
            log.exception("node package %s failed to load", source)
            continue
        found.extend((candidate, source, _origin(entry_point)) for candidate in candidates)
    offered: dict[str, set[str]] = {}
    for candidate, _source, origin in found:
        type_id = getattr(candidate, "type_id", None)
        if isinstance(type_id, str):
            offered.setdefault(type_id, set()).add(origin.distribution)
    for candidate, source, origin in found:
        type_id = getattr(candidate, "type_id", None)
        rivals = offered.get(type_id, set()) if isinstance(type_id, str) else set()
        if len(rivals) > 1:
            message = (
                f"type id {type_id!r} is offered by {' and '.join(sorted(rivals))}; "
                "neither is loaded until one of them is uninstalled"
            )
            registry.errors.append(LoadError(f"{origin.distribution} {origin.version}", message))
            log.error("node type from %s not loaded: %s", source, message)
            continue
        registry.add(candidate, source, origin)  # type: ignore[arg-type]
    return registry
