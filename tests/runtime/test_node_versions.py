"""Node type versions: graphs store each node's version; publish and load upgrade old configs."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import insert, select

from backend.models import Flow, FlowVersion
from backend.web.editor.ops import add_node
from nodes.sdk import ConfigTooNew, Context, Family, NodeType, Outcome, upgrade_config
from runtime.engine import Runtime
from runtime.graph import InvalidGraph, parse_graph
from runtime.versions import VersionCache, compile_version
from tests.runtime.conftest import add_contacts, journeys, publish
from tests.runtime.nodes import graph, test_registry


class GreetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    greeting: str
    punctuation: str = "!"


class Greet(NodeType[GreetConfig]):
    """Version 1 stored ``{"text": "Hej"}``; version 2 calls it ``greeting``; 3 adds punctuation."""

    type_id = "test.greet"
    version = 3
    name = "Greet"
    family = Family.action
    config_model = GreetConfig

    @classmethod
    def upgrade(cls, config: dict[str, Any], version: int) -> dict[str, Any]:
        if version == 1:
            config["greeting"] = config.pop("text")
        return config

    async def run(self, ctx: Context[GreetConfig]) -> Outcome:
        return Outcome.go(data={"said": ctx.config.greeting + ctx.config.punctuation})


def _registry() -> Any:
    registry = test_registry()
    registry.add(Greet)
    return registry


def _v1_graph() -> dict[str, Any]:
    """A graph as stored before the type's version 2: no version on the node, the old field."""
    return graph(
        [("t", "test.trigger", {"event_type": "go"}), ("g", "test.greet", {"text": "Hej"})],
        [("t", "next", "g")],
    )


def _use(runtime: Runtime) -> None:
    runtime.registry = _registry()
    runtime.versions = VersionCache(runtime.registry)


def test_upgrade_config_runs_each_step_and_refuses_a_newer_config() -> None:
    assert upgrade_config(Greet, {"text": "Hej"}, None) == {"greeting": "Hej"}
    assert upgrade_config(Greet, {"text": "Hej"}, 1) == {"greeting": "Hej"}
    assert upgrade_config(Greet, {"greeting": "Hi"}, 2) == {"greeting": "Hi"}
    assert upgrade_config(Greet, {"greeting": "Hi"}, 3) == {"greeting": "Hi"}
    with pytest.raises(ConfigTooNew, match=r"version 4 of test\.greet"):
        upgrade_config(Greet, {"greeting": "Hi"}, 4)


def test_publishing_stores_the_upgraded_config_with_the_types_version() -> None:
    parsed = parse_graph(_v1_graph(), _registry())
    greet = parsed.node_map["g"]
    assert (greet.version, greet.config) == (3, {"greeting": "Hej"})
    assert parsed.node_map["t"].version == 1
    too_new = _v1_graph()
    too_new["nodes"][1] |= {"version": 9, "config": {"greeting": "Hej"}}
    with pytest.raises(InvalidGraph, match="version 9"):
        parse_graph(too_new, _registry())


def test_the_editor_stores_the_version_of_a_new_node() -> None:
    fresh, _ = add_node({"nodes": [], "edges": []}, "test.greet", 10, 10, _registry())
    assert fresh["nodes"][0]["version"] == 3


def test_loading_an_old_version_upgrades_its_config() -> None:
    compiled = compile_version(7, 1, _v1_graph(), _registry())
    node = compiled.nodes["g"]
    assert node.problem is None
    assert node.config == GreetConfig(greeting="Hej")


async def test_a_v1_config_runs_after_publish(runtime: Runtime) -> None:
    _use(runtime)
    [contact] = await add_contacts(runtime, 1)
    flow_id = await publish(runtime, _v1_graph())
    async with runtime.sessions() as session:
        stored = await session.scalar(
            select(FlowVersion.graph).where(FlowVersion.flow_id == flow_id)
        )
    assert stored is not None
    assert {n["id"]: (n["version"], n["config"]) for n in stored["nodes"]}["g"] == (
        3,
        {"greeting": "Hej"},
    )
    await runtime.ingest("go", contact_id=contact)
    await runtime.drain()
    [journey] = await journeys(runtime)
    assert (journey.status, journey.data.get("said")) == ("completed", "Hej!")


async def test_a_version_published_before_the_upgrade_still_runs(runtime: Runtime) -> None:
    """A version frozen while the type was at v1 is upgraded when the runtime loads it."""
    [contact] = await add_contacts(runtime, 1)
    flow_id = await publish(runtime, graph([("t", "test.trigger", {"event_type": "go"})], []))
    async with runtime.sessions() as session, session.begin():
        old = await session.scalar(
            insert(FlowVersion)
            .values(flow_id=flow_id, number=2, graph=_v1_graph() | {"settings": {}})
            .returning(FlowVersion.id)
        )
        flow = await session.get(Flow, flow_id)
        assert flow is not None
        flow.published_version_id = old
    _use(runtime)
    await runtime.ingest("go", contact_id=contact)
    await runtime.drain()
    [journey] = await journeys(runtime)
    assert (journey.flow_version_id, journey.data.get("said")) == (old, "Hej!")
