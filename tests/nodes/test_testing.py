"""The test kit itself: it builds contexts like the runtime and catches what the runtime would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel, Field

from nodes.sdk import ICON_NAMES, Context, Family, NodeType, Outcome, Port
from nodes.sdk.testing import (
    DEFAULT_NOW,
    FixedClock,
    check_declaration,
    config_errors,
    contact,
    event,
    make_context,
    run_node,
    visitor,
)


class EchoConfig(BaseModel):
    port: str = Field(default="next", title="Port", description="The port to choose.")


class Echo(NodeType[EchoConfig]):
    type_id = "test.echo"
    name = "Echo"
    description = "Goes to the configured port."
    family = Family.condition
    config_model = EchoConfig
    ports = (Port("next"), Port("other"))

    async def run(self, ctx: Context[EchoConfig]) -> Outcome:
        return Outcome.go(
            ctx.config.port, data={"seen": len(ctx.events), "at": ctx.now.isoformat()}
        )


async def test_run_node_refuses_an_undeclared_port_like_the_engine() -> None:
    assert (await run_node(Echo, {"port": "other"})).port == "other"
    with pytest.raises(AssertionError, match="chose port 'nowhere'"):
        await run_node(Echo, {"port": "nowhere"})


def test_context_holds_events_oldest_first_and_the_given_moment() -> None:
    moment = datetime(2031, 5, 1, 12, tzinfo=UTC)
    newer = event("page.viewed", days_ago=1, now=moment)
    older = event("page.viewed", days_ago=3, now=moment)
    ctx = make_context(Echo, {}, events=[newer, older], now=moment, journey_id=8, data={"k": 1})
    assert ctx.events == (older, newer)
    assert ctx.now == moment and ctx.journey.id == 8 and ctx.journey.data == {"k": 1}
    assert isinstance(ctx.config, EchoConfig)
    assert ctx.profile == contact()
    with pytest.raises(AttributeError):
        ctx.config = EchoConfig()  # type: ignore[misc]


async def test_a_shared_clock_moves_between_runs() -> None:
    clock = FixedClock()
    first = await run_node(Echo, clock=clock)
    clock.advance(hours=2)
    second = await run_node(Echo, clock=clock)
    assert first.data["at"] == DEFAULT_NOW.isoformat()
    assert second.data["at"] == (DEFAULT_NOW + timedelta(hours=2)).isoformat()
    with pytest.raises(ValueError, match="aware"):
        FixedClock(datetime(2030, 1, 1))


def test_profiles_and_config_errors() -> None:
    assert contact(3).contact_id == 3 and contact(3).email == "ada3@example.test"
    assert visitor().contact_id is None and visitor().email is None
    assert config_errors(Echo, {"port": 5}) == {"port": "Input should be a valid string"}
    assert config_errors(Echo, {}) == {}


def test_check_declaration_lists_what_the_palette_would_miss() -> None:
    class Bare(BaseModel):
        size: int = 1

    class Sloppy(NodeType[Bare]):
        type_id = "Sloppy"
        name = "Sloppy"
        family = Family.action
        color = "red"
        config_model = Bare
        ports = (Port("next"), Port("next"))

        async def run(self, ctx: Context[Bare]) -> Outcome:
            return Outcome.go()

    problems = check_declaration(Sloppy)
    assert "type_id 'Sloppy' should be lowercase 'namespace.name'" in problems
    assert "description is missing (the palette shows it)" in problems
    assert "color 'red' should be '#rrggbb'" in problems
    assert "config field 'size' has no description" in problems
    assert "ports ['next', 'next'] are not unique" in problems
    assert check_declaration(Echo) == []


def test_check_declaration_refuses_an_icon_the_editor_cannot_draw() -> None:
    class Shouty(Echo):
        icon = "megaphone-3d"

    [problem] = check_declaration(Shouty)
    assert problem.startswith("icon 'megaphone-3d' is not one the editor draws")
    assert "message-circle" in problem and "webhook" in problem
    assert "megaphone-3d" not in ICON_NAMES and "mail" in ICON_NAMES
