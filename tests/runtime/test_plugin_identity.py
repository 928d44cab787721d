"""Plugin identity: two packages offering one type_id, and a published flow's types swapped.

The packages are real distributions on disk (``*.dist-info`` with METADATA and
entry_points.txt, and a module), read through ``importlib.metadata`` exactly
as installed packages are; each node tags the contact with its package name,
so the test sees whose code ran.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint, distributions
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, FlowVersion, Journey
from backend.settings import Settings
from nodes.sdk import ENTRY_POINT_GROUP, NodeRegistry
from nodes.sdk.registry import register_all
from runtime.clock import FakeClock
from runtime.engine import Runtime
from tests.runtime.conftest import add_contacts, publish
from tests.runtime.nodes import EventTrigger, graph

NODE_MODULE = """
from nodes.sdk import ContactChanges, Context, EmptyConfig, Family, NodeType, Outcome


class Tag(NodeType[EmptyConfig]):
    type_id = "{type_id}"
    name = "Tag from {dist}"
    family = Family.action
    config_model = EmptyConfig

    async def run(self, ctx: Context[EmptyConfig]) -> Outcome:
        return Outcome.go(changes=ContactChanges(add_tags=("{dist}",)))


NODE_TYPES = [Tag]
"""


def _install(root: Path, dist: str, version: str, type_id: str) -> None:
    module = dist.replace("-", "_")
    (root / f"{module}.py").write_text(NODE_MODULE.format(type_id=type_id, dist=dist))
    info = root / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n{module} = {module}:NODE_TYPES\n"
    )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    """A folder of installed packages, importable for the test."""
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.endswith("_nodes")]:
            del sys.modules[name]


def _points(site: Path, *names: str) -> list[EntryPoint]:
    found = [
        ep
        for dist in distributions(path=[str(site)])
        if dist.metadata["Name"] in names
        for ep in dist.entry_points
        if ep.group == ENTRY_POINT_GROUP
    ]
    return sorted(found, key=lambda ep: ep.name)


def _registry(site: Path, *names: str) -> NodeRegistry:
    registry = register_all(_points(site, *names))
    registry.add(EventTrigger)  # the test trigger, added in code (no package)
    return registry


def test_a_type_id_offered_by_two_packages_is_refused_for_both(site: Path) -> None:
    _install(site, "acme-nodes", "1.0", "acme.tag")
    _install(site, "rival-nodes", "2.3", "acme.tag")
    _install(site, "other-nodes", "0.1", "other.tag")
    registry = _registry(site, "acme-nodes", "rival-nodes", "other-nodes")
    assert "acme.tag" not in registry
    messages = {e.source: e.message for e in registry.errors}
    assert set(messages) == {"acme-nodes 1.0", "rival-nodes 2.3"}
    assert all("offered by acme-nodes and rival-nodes" in m for m in messages.values())
    assert registry.origin("other.tag") is not None
    assert registry.origin("other.tag").as_json() == {  # type: ignore[union-attr]
        "distribution": "other-nodes",
        "version": "0.1",
    }


def _flow() -> dict[str, object]:
    return graph(
        [("start", "test.trigger", {"event_type": "signed_up"}), ("tag", "acme.tag", {})],
        [("start", "next", "tag")],
    )


def _runtime(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FakeClock,
    registry: NodeRegistry,
) -> Runtime:
    return Runtime(sessions=sessions, registry=registry, settings=settings, clock=clock)


async def _tags(rt: Runtime, contact: int) -> list[str]:
    async with rt.sessions() as db:
        return list((await db.get(Contact, contact)).tags or [])  # type: ignore[union-attr]


@pytest.mark.parametrize("replacement", ["rival-nodes", None])
async def test_a_published_flow_waits_instead_of_running_another_packages_code(
    site: Path,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FakeClock,
    replacement: str | None,
) -> None:
    _install(site, "acme-nodes", "1.0", "acme.tag")
    _install(site, "rival-nodes", "6.6", "acme.tag")
    published = _runtime(sessions, settings, clock, _registry(site, "acme-nodes"))
    first, second = await add_contacts(published, 2)
    await publish(published, _flow())
    async with sessions() as db:
        [origins] = (await db.scalars(select(FlowVersion.node_origins))).all()
    assert origins == {"acme.tag": {"distribution": "acme-nodes", "version": "1.0"}}
    await published.ingest("signed_up", contact_id=first)
    await published.drain()
    assert await _tags(published, first) == ["acme-nodes"]

    # acme-nodes is uninstalled; rival-nodes (or nothing) now offers acme.tag.
    names = (replacement,) if replacement else ()
    swapped = _runtime(sessions, settings, clock, _registry(site, *names))
    await swapped.ingest("signed_up", contact_id=second)
    for _ in range(settings.max_step_attempts + 3):
        await swapped.drain()
        clock.advance(hours=2)
    assert await _tags(swapped, second) == []  # the other package's code never ran
    async with sessions() as db:
        journey = await db.scalar(select(Journey).where(Journey.contact_id == second))
    assert journey is not None
    assert journey.status == "active" and journey.node_id == "tag"  # held, not failed
    expected = "comes from rival-nodes 6.6" if replacement else "is not installed"
    assert expected in (journey.last_error or "")

    # The right package back: the journey goes on from where it waited.
    restored = _runtime(sessions, settings, clock, _registry(site, "acme-nodes"))
    clock.advance(hours=2)
    await restored.drain()
    assert await _tags(restored, second) == ["acme-nodes"]
