"""Tiny node types for runtime tests. They use the public SDK contract only.

The built-in library is developed separately; these keep the engine's tests
independent of it while exercising the same ``run(ctx) -> Outcome`` path.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from nodes.sdk import (
    ContactChanges,
    Context,
    EmptyConfig,
    EventRecord,
    EventWait,
    Family,
    Message,
    NodeRegistry,
    NodeType,
    Outcome,
    Port,
    Profile,
    Trigger,
    Wait,
)


class TriggerConfig(BaseModel):
    event_type: str
    where: dict[str, Any] = {}


class EventTrigger(NodeType[TriggerConfig]):
    type_id = "test.trigger"
    name = "Test trigger"
    family = Family.trigger
    config_model = TriggerConfig

    @classmethod
    def trigger(cls, config: BaseModel) -> Trigger:
        assert isinstance(config, TriggerConfig)
        return Trigger(event_type=config.event_type)

    @classmethod
    def accepts(cls, config: BaseModel, event: EventRecord, profile: Profile) -> bool:
        assert isinstance(config, TriggerConfig)
        return all(event.properties.get(k) == v for k, v in config.where.items())

    async def run(self, ctx: Context[TriggerConfig]) -> Outcome:
        return Outcome.go()


class EmailConfig(BaseModel):
    subject: str
    category: str = "marketing"


class SendEmail(NodeType[EmailConfig]):
    type_id = "test.email"
    name = "Test email"
    family = Family.action
    config_model = EmailConfig

    async def run(self, ctx: Context[EmailConfig]) -> Outcome:
        payload = {
            "to": ctx.profile.email,
            "subject": ctx.config.subject,
            "text": f"Hello {ctx.profile.first_name}",
            "html": f"<p>Hello {ctx.profile.first_name}</p>",
        }
        return Outcome.go(messages=(Message("email", payload, category=ctx.config.category),))


class WaitEventConfig(BaseModel):
    event_type: str
    for_node: str | None = None
    match: dict[str, Any] = {}
    timeout_hours: float = 48


class WaitForEvent(NodeType[WaitEventConfig]):
    type_id = "test.wait_event"
    name = "Test wait for event"
    family = Family.wait
    config_model = WaitEventConfig
    ports = (Port("event"), Port("timeout"))

    async def run(self, ctx: Context[WaitEventConfig]) -> Outcome:
        if ctx.wake is not None:
            if ctx.profile.attributes.get("explode"):
                raise RuntimeError("boom on wake")
            if ctx.wake.reason == "event" and ctx.wake.event is not None:
                return Outcome.go("event", data={"woken_by": ctx.wake.event.id})
            return Outcome.go("timeout")
        match = dict(ctx.config.match)
        if ctx.config.for_node:
            match.update(journey_id=ctx.journey.id, node_id=ctx.config.for_node)
        until = ctx.now + timedelta(hours=ctx.config.timeout_hours)
        return Outcome.park(Wait(until=until, event=EventWait(ctx.config.event_type, match)))


class WaitConfig(BaseModel):
    hours: float = 48


class WaitDuration(NodeType[WaitConfig]):
    type_id = "test.wait"
    name = "Test wait"
    family = Family.wait
    config_model = WaitConfig

    async def run(self, ctx: Context[WaitConfig]) -> Outcome:
        if ctx.wake is not None:
            return Outcome.go()
        return Outcome.park(Wait(until=ctx.now + timedelta(hours=ctx.config.hours)))


class NotifyConfig(BaseModel):
    title: str
    due_days: int = 1


class Notify(NodeType[NotifyConfig]):
    type_id = "test.notify"
    name = "Test notify salesperson"
    family = Family.action
    config_model = NotifyConfig

    async def run(self, ctx: Context[NotifyConfig]) -> Outcome:
        payload = {
            "owner_id": ctx.profile.owner_id,
            "contact_id": ctx.profile.contact_id,
            "title": ctx.config.title,
            "note": f"Call {ctx.profile.first_name}",
            "due_at": (ctx.now + timedelta(days=ctx.config.due_days)).isoformat(),
        }
        return Outcome.go(messages=(Message("task", payload, category="transactional"),))


class ConditionConfig(BaseModel):
    attribute: str
    equals: Any = True


class Condition(NodeType[ConditionConfig]):
    type_id = "test.condition"
    name = "Test condition"
    family = Family.condition
    config_model = ConditionConfig
    ports = (Port("yes"), Port("no"))

    async def run(self, ctx: Context[ConditionConfig]) -> Outcome:
        value = ctx.profile.attributes.get(ctx.config.attribute)
        return Outcome.go("yes" if value == ctx.config.equals else "no")


class SawEventConfig(BaseModel):
    event_type: str


class SawEvent(NodeType[SawEventConfig]):
    """A condition that reads history: did the customer do ``event_type`` recently?"""

    type_id = "test.saw_event"
    name = "Test saw event"
    family = Family.condition
    config_model = SawEventConfig
    ports = (Port("yes"), Port("no"))
    needs_events = True

    async def run(self, ctx: Context[SawEventConfig]) -> Outcome:
        seen = any(e.type == ctx.config.event_type for e in ctx.events)
        return Outcome.go("yes" if seen else "no")


class TagConfig(BaseModel):
    tag: str
    attribute: str | None = None
    value: Any = None


class Tag(NodeType[TagConfig]):
    type_id = "test.tag"
    name = "Test tag"
    family = Family.action
    config_model = TagConfig

    async def run(self, ctx: Context[TagConfig]) -> Outcome:
        attrs = {ctx.config.attribute: ctx.config.value} if ctx.config.attribute else {}
        return Outcome.go(changes=ContactChanges(set_attributes=attrs, add_tags=(ctx.config.tag,)))


class Explode(NodeType[EmptyConfig]):
    """Fails while the customer's ``explode`` attribute is true."""

    type_id = "test.explode"
    name = "Test explode"
    family = Family.action

    async def run(self, ctx: Context[EmptyConfig]) -> Outcome:
        if ctx.profile.attributes.get("explode"):
            raise RuntimeError("boom")
        return Outcome.go()


class Poison(NodeType[EmptyConfig]):
    """While the customer's ``poison`` attribute is true, returns data no database can store."""

    type_id = "test.poison"
    name = "Test poison"
    family = Family.action

    async def run(self, ctx: Context[EmptyConfig]) -> Outcome:
        if ctx.profile.attributes.get("poison"):
            return Outcome.go(data={"unstorable": {1, 2}})
        return Outcome.go()


class Gate(NodeType[EmptyConfig]):
    """Blocks in node code until the runtime's ``gate`` service (an asyncio.Event) is set.

    Lets a test hold a worker mid-batch, after its claim and before its write,
    the way a stalled or dying worker would be. Without the service it passes.
    """

    type_id = "test.gate"
    name = "Test gate"
    family = Family.action

    async def run(self, ctx: Context[EmptyConfig]) -> Outcome:
        gate = ctx.services.extras.get("gate")
        if gate is not None:
            ctx.services.extras["at_gate"].set()
            await gate.wait()
        return Outcome.go()


class EndConfig(BaseModel):
    reason: str = "done"
    exited: bool = False


class End(NodeType[EndConfig]):
    type_id = "test.end"
    name = "Test end"
    family = Family.goal
    config_model = EndConfig
    ports = ()

    async def run(self, ctx: Context[EndConfig]) -> Outcome:
        return Outcome.finish(ctx.config.reason, exited=ctx.config.exited)


class GoalConfig(BaseModel):
    event_type: str


class Goal(NodeType[GoalConfig]):
    """A conversion goal: reached when its event arrives, wherever the journey is."""

    type_id = "test.goal"
    name = "Test goal"
    family = Family.goal
    config_model = GoalConfig
    ports = ()

    @classmethod
    def trigger(cls, config: BaseModel) -> Trigger:
        assert isinstance(config, GoalConfig)
        return Trigger(event_type=config.event_type)

    async def run(self, ctx: Context[GoalConfig]) -> Outcome:
        return Outcome.finish("goal reached")


class UntilConfig(BaseModel):
    at: datetime


class WaitUntil(NodeType[UntilConfig]):
    """Waits until a fixed moment (goes on at once when it has passed)."""

    type_id = "test.wait_until"
    name = "Test wait until"
    family = Family.wait
    config_model = UntilConfig

    async def run(self, ctx: Context[UntilConfig]) -> Outcome:
        if ctx.wake is not None or ctx.now >= ctx.config.at:
            return Outcome.go()
        return Outcome.park(Wait(until=ctx.config.at))


class WindowConfig(BaseModel):
    weekdays: list[int] = [0, 1, 2, 3, 4]  # Monday is 0
    start_hour: int = 9
    end_hour: int = 17


def next_opening(config: WindowConfig, now: datetime, zone: ZoneInfo) -> datetime | None:
    """When the window next opens in ``zone``, or None when it is open at ``now``."""
    local = now.astimezone(zone)
    if local.weekday() in config.weekdays and config.start_hour <= local.hour < config.end_hour:
        return None
    for offset in range(8):
        day: date = local.date() + timedelta(days=offset)
        opening = datetime.combine(day, time(config.start_hour), tzinfo=zone)
        if day.weekday() in config.weekdays and opening > now:
            return opening
    raise ValueError("the window never opens")


class WaitWindow(NodeType[WindowConfig]):
    """Waits for a weekday/hour window in the customer's own time zone."""

    type_id = "test.wait_window"
    name = "Test wait for a window"
    family = Family.wait
    config_model = WindowConfig

    async def run(self, ctx: Context[WindowConfig]) -> Outcome:
        zone = ZoneInfo(ctx.profile.timezone or "UTC")
        opening = next_opening(ctx.config, ctx.now, zone)
        if opening is None:
            return Outcome.go(data={"sent_local": ctx.now.astimezone(zone).isoformat()})
        return Outcome.park(Wait(until=opening))


class SplitConfig(BaseModel):
    percent_a: int = 50


class Split(NodeType[SplitConfig]):
    """A/B split, deterministic per customer."""

    type_id = "test.split"
    name = "Test split"
    family = Family.split
    config_model = SplitConfig
    ports = (Port("a"), Port("b"))

    async def run(self, ctx: Context[SplitConfig]) -> Outcome:
        digest = hashlib.sha256(f"{ctx.journey.flow_id}:{ctx.profile.id}".encode()).digest()
        return Outcome.go("a" if digest[0] * 100 // 256 < ctx.config.percent_a else "b")


class HookConfig(BaseModel):
    url: str


class Webhook(NodeType[HookConfig]):
    """Calls a webhook with the customer's id."""

    type_id = "test.webhook"
    name = "Test webhook"
    family = Family.action
    config_model = HookConfig

    async def run(self, ctx: Context[HookConfig]) -> Outcome:
        body = {"customer": ctx.profile.id, "node": ctx.journey.node_id}
        return Outcome.go(messages=(Message("webhook", {"url": ctx.config.url, "body": body}),))


class Stray(NodeType[EmptyConfig]):
    """Chooses the port "elsewhere", which it does not declare."""

    type_id = "test.stray"
    name = "Test stray port"
    family = Family.condition
    ports = (Port("yes"), Port("no"))

    async def run(self, ctx: Context[EmptyConfig]) -> Outcome:
        return Outcome.go("elsewhere")


TEST_NODE_TYPES: list[type[NodeType[Any]]] = [
    EventTrigger,
    SendEmail,
    WaitForEvent,
    WaitDuration,
    Notify,
    Condition,
    SawEvent,
    Tag,
    Explode,
    Poison,
    Gate,
    End,
    Goal,
    WaitUntil,
    WaitWindow,
    Split,
    Webhook,
    Stray,
]


def test_registry() -> NodeRegistry:
    registry = NodeRegistry()
    for node_type in TEST_NODE_TYPES:
        registry.add(node_type)
    assert not registry.errors, registry.errors
    return registry


test_registry.__test__ = False  # type: ignore[attr-defined]


def graph(
    nodes: list[tuple[str, str, dict[str, Any]]],
    edges: list[tuple[str, str, str]],
    **settings: Any,
) -> dict[str, Any]:
    """A raw flow graph: ``nodes`` as (id, type, config), ``edges`` as (source, port, target)."""
    return {
        "nodes": [{"id": i, "type": t, "config": c} for i, t, c in nodes],
        "edges": [{"source": s, "port": p, "target": t} for s, p, t in edges],
        "settings": settings,
    }


def canonical_graph() -> dict[str, Any]:
    """Form submitted -> confirmation -> wait 2 days for its open -> reminder | 2 days -> task."""
    return graph(
        [
            ("form", "test.trigger", {"event_type": "form.submitted"}),
            ("confirm", "test.email", {"subject": "Your download"}),
            (
                "opened",
                "test.wait_event",
                {"event_type": "email.opened", "for_node": "confirm", "timeout_hours": 48},
            ),
            ("reminder", "test.email", {"subject": "Did you see it?"}),
            ("later", "test.wait", {"hours": 48}),
            ("notify", "test.notify", {"title": "Call the lead"}),
        ],
        [
            ("form", "next", "confirm"),
            ("confirm", "next", "opened"),
            ("opened", "timeout", "reminder"),
            ("opened", "event", "later"),
            ("later", "next", "notify"),
        ],
    )
