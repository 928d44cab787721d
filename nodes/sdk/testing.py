"""A test kit for node types: build a context, run the node, assert the outcome.

A node is pure apart from ``ctx``, so a unit test needs no database, server or
clock of its own::

    from nodes.sdk.testing import contact, event, run_node

    async def test_vip_goes_left() -> None:
        outcome = await run_node(
            IsVip, {"threshold": 100}, profile=contact(attributes={"spent": 250})
        )
        assert outcome.port == "yes"

``run_node`` validates the raw config through the node's pydantic model (so a
test sees the same errors the editor shows) and checks the chosen port is one
the node declares, exactly like the runtime. ``config_errors`` returns the
validation messages per field; ``check_declaration`` lists what is missing or
inconsistent in a node type's declaration (the registry and the editor rely on it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from nodes.sdk.context import Context, Services
from nodes.sdk.icons import ICON_NAMES
from nodes.sdk.node import NodeType
from nodes.sdk.transition import UndeclaredPort, transition
from nodes.sdk.types import EventRecord, Family, JourneyInfo, Outcome, Profile, Wake

__all__ = [
    "DEFAULT_NOW",
    "FixedClock",
    "check_declaration",
    "config_errors",
    "contact",
    "event",
    "event_wake",
    "make_context",
    "run_node",
    "timer_wake",
    "visitor",
]

# A Monday morning, so tests about weekdays and business hours read naturally.
DEFAULT_NOW = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
TEST_SERVICES = Services(
    base_url="https://touchflow.test",
    sign=lambda value: f"signed({value})",
)

_log = logging.getLogger("touchflow.nodes.test")


class FixedClock:
    """A clock that stands still until ``advance`` moves it."""

    def __init__(self, now: datetime = DEFAULT_NOW) -> None:
        if now.tzinfo is None:
            raise ValueError("a clock needs an aware datetime (add tzinfo=UTC)")
        self._now = now

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """Move forward by ``delta`` or ``timedelta(**kwargs)``; returns the new now."""
        self._now += delta if delta is not None else timedelta(**kwargs)
        return self._now


def contact(id: int = 1, **fields: Any) -> Profile:
    """A known contact's profile; any ``Profile`` field may be given."""
    defaults: dict[str, Any] = {"email": f"ada{id}@example.test", "first_name": "Ada"}
    return Profile(kind="contact", id=str(id), **(defaults | fields))


def visitor(id: str = "v-1", **fields: Any) -> Profile:
    """An anonymous website visitor's profile (no email, phone or owner)."""
    return Profile(kind="visitor", id=id, **fields)


def event(
    type: str,
    properties: Mapping[str, Any] | None = None,
    *,
    at: datetime | None = None,
    days_ago: float | None = None,
    now: datetime = DEFAULT_NOW,
    id: int | None = None,
    source: str = "api",
) -> EventRecord:
    """An event of ``type``; when it happened is ``at``, ``days_ago`` before ``now``, or now."""
    if at is None:
        at = now - timedelta(days=days_ago or 0)
    return EventRecord(
        type=type, occurred_at=at, properties=dict(properties or {}), id=id, source=source
    )


def timer_wake(since: datetime | None = None) -> Wake:
    """``ctx.wake`` as the runtime sets it when a waiting node's timer fires."""
    return Wake("timer", None, since)


def event_wake(record: EventRecord, since: datetime | None = None) -> Wake:
    """``ctx.wake`` as the runtime sets it when the awaited event arrives."""
    return Wake("event", record, since)


def _parse(node_type: type[NodeType[Any]], config: Mapping[str, Any] | BaseModel | None) -> Any:
    if isinstance(config, BaseModel):
        return config
    return node_type.parse_config(dict(config or {}))


def make_context(
    node_type: type[NodeType[Any]],
    config: Mapping[str, Any] | BaseModel | None = None,
    *,
    profile: Profile | None = None,
    events: Iterable[EventRecord] = (),
    now: datetime | None = None,
    clock: FixedClock | None = None,
    node_id: str = "node",
    journey_id: int = 1,
    flow_id: int = 1,
    visit: int = 1,
    data: Mapping[str, Any] | None = None,
    wake: Wake | None = None,
    services: Services = TEST_SERVICES,
) -> Context[Any]:
    """The frozen context the runtime would hand ``node_type`` (config validated first).

    ``events`` are the customer's recent events (sorted oldest first, as the
    runtime gives them). Pass ``clock`` to share one clock between runs, or
    ``now`` for a fixed moment (default: ``DEFAULT_NOW``).
    """
    clock = clock or FixedClock(now or DEFAULT_NOW)
    return Context(
        config=_parse(node_type, config),
        journey=JourneyInfo(
            id=journey_id,
            flow_id=flow_id,
            flow_version_id=flow_id,
            node_id=node_id,
            visit=visit,
            entered_at=clock.now(),
            data=dict(data or {}),
        ),
        profile=profile or contact(),
        events=tuple(sorted(events, key=lambda e: e.occurred_at)),
        clock=clock,
        log=logging.LoggerAdapter(_log, {"node_id": node_id}),
        services=services,
        wake=wake,
    )


async def run_node(
    node_type: type[NodeType[Any]],
    config: Mapping[str, Any] | BaseModel | None = None,
    **context: Any,
) -> Outcome:
    """Run ``node_type`` once, through the runtime's own transition, and return its outcome.

    Keyword arguments are those of ``make_context``. An exception the node
    raises is raised here; choosing a port the node does not declare raises
    ``AssertionError`` (the runtime would fail the step).
    """
    ctx = make_context(node_type, config, **context)
    journey = ctx.journey
    done = await transition(
        node_type(),
        ctx.config,
        {port.id for port in node_type.output_ports(ctx.config)},
        journey_id=journey.id,
        flow_id=journey.flow_id,
        flow_version_id=journey.flow_version_id,
        node_id=journey.node_id,
        visit=journey.visit,
        entered_at=journey.entered_at,
        data=journey.data,
        profile=ctx.profile,
        events=ctx.events,
        clock=ctx.clock,
        services=ctx.services,
        wake=ctx.wake,
        log=_log,
    )
    if isinstance(done.exception, UndeclaredPort):
        raise AssertionError(str(done.exception)) from done.exception
    if done.exception is not None:
        raise done.exception
    assert done.outcome is not None, done.error
    return done.outcome


def config_errors(node_type: type[NodeType[Any]], raw: Mapping[str, Any]) -> dict[str, str]:
    """Validation messages per field path (``"variants.1.percent"``); empty when valid."""
    try:
        node_type.parse_config(dict(raw))
    except ValidationError as exc:
        return {
            ".".join(str(part) for part in err["loc"]) or "__root__": err["msg"]
            for err in exc.errors()
        }
    return {}


def check_declaration(node_type: type[NodeType[Any]]) -> list[str]:
    """Problems in a node type's declaration that would hurt the registry or the editor.

    Checks the stable id, name, family, icon (one of ``nodes.sdk.ICON_NAMES``)
    and colour, that the config model
    has a JSON schema with a title and description on every field, and that
    the default config (when it is valid) yields unique ports. Empty means fine.
    """
    problems: list[str] = []
    type_id = getattr(node_type, "type_id", "")
    if not type_id or "." not in type_id or type_id != type_id.strip().lower():
        problems.append(f"type_id {type_id!r} should be lowercase 'namespace.name'")
    if not getattr(node_type, "name", ""):
        problems.append("name is missing")
    if not isinstance(getattr(node_type, "family", None), Family):
        problems.append("family must be a nodes.sdk.Family")
    if not node_type.description:
        problems.append("description is missing (the palette shows it)")
    color = node_type.color
    if not (len(color) == 7 and color.startswith("#")):
        problems.append(f"color {color!r} should be '#rrggbb'")
    if node_type.icon not in ICON_NAMES:
        problems.append(
            f"icon {node_type.icon!r} is not one the editor draws; pick one of "
            f"nodes.sdk.ICON_NAMES: {', '.join(sorted(ICON_NAMES))}"
        )
    schema = node_type.config_model.model_json_schema()
    for name, field in schema.get("properties", {}).items():
        if not field.get("title"):
            problems.append(f"config field {name!r} has no title")
        if not field.get("description"):
            problems.append(f"config field {name!r} has no description")
    try:
        default = node_type.parse_config({})
    except ValidationError:
        return problems  # a required field: ports are checked with a real config by the author
    ports = [port.id for port in node_type.output_ports(default)]
    if len(ports) != len(set(ports)):
        problems.append(f"ports {ports} are not unique")
    return problems
