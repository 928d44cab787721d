"""Delivery outcomes as ports: a flow branches on how its webhook, email or SMS delivery went.

The webhook goes to a real loopback HTTP server; a 400 fails the delivery for
good, the outbox records it, and the journey waiting at the step goes on
through "failed" with the receiver's answer in its data.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from backend.models import Journey, OutboxMessage, Step
from nodes.builtin.actions import SendEmail, SendSms, SendWebhook
from nodes.sdk import Services
from nodes.sdk.testing import DEFAULT_NOW, contact, event, event_wake, run_node, timer_wake
from runtime.clock import FakeClock
from runtime.engine import Runtime
from runtime.simulate import simulate
from tests.nodes.receiver import Receiver
from tests.runtime.conftest import add_contacts, publish
from tests.runtime.nodes import graph
from tests.runtime.test_builtin_flows import SECRET, builtin_registry, hook, rows, rt

__all__ = ["hook", "rt"]


def _flow(url: str, *, wait: bool = True) -> dict[str, Any]:
    return graph(
        [
            ("start", "trigger.api", {}),
            (
                "crm",
                "action.webhook",
                {"url": url, "secret": SECRET, "wait_for_delivery": wait},
            ),
            ("welcome", "action.tag", {"add": ["in-crm"]}),
            ("fix", "action.tag", {"add": ["crm-refused"]}),
        ],
        [("start", "next", "crm"), ("crm", "delivered", "welcome"), ("crm", "failed", "fix")],
    )


async def _path(rt: Runtime, journey_id: int) -> list[tuple[str, str | None]]:
    return [(s.node_id, s.port) for s in await rows(rt, Step, Step.journey_id == journey_id)]


async def test_a_flow_branches_on_the_webhooks_400(rt: Runtime, hook: Receiver) -> None:
    refused, accepted = await add_contacts(rt, 2)
    flow_id = await publish(rt, _flow(f"{hook.url}/hook"))

    hook.status = 400
    first = await rt.start(flow_id, contact_id=refused)
    assert first is not None
    await rt.drain()
    hook.status = 200
    second = await rt.start(flow_id, contact_id=accepted)
    assert second is not None
    await rt.drain()

    assert len(hook.received()) == 2
    assert await _path(rt, first) == [("start", "next"), ("crm", "failed"), ("fix", "next")]
    assert await _path(rt, second) == [("start", "next"), ("crm", "delivered"), ("welcome", "next")]
    journeys = {j.id: j for j in await rows(rt, Journey)}
    assert {j.status for j in journeys.values()} == {"completed"}
    reason = journeys[first].data["crm"]["reason"]
    assert "HTTP 400" in reason and journeys[first].data["crm"]["delivery"] == "failed"
    assert journeys[second].data["crm"] == {"delivery": "delivered"}
    [dead] = await rows(rt, OutboxMessage, OutboxMessage.journey_id == first)
    assert dead.status == "dead"


async def test_without_waiting_the_flow_goes_on_at_once(rt: Runtime, hook: Receiver) -> None:
    [customer] = await add_contacts(rt, 1)
    plain = graph(
        [
            ("start", "trigger.api", {}),
            ("crm", "action.webhook", {"url": f"{hook.url}/hook", "secret": SECRET}),
            ("welcome", "action.tag", {"add": ["in-crm"]}),
        ],
        [("start", "next", "crm"), ("crm", "next", "welcome")],
    )
    flow_id = await publish(rt, plain)
    hook.status = 400
    journey = await rt.start(flow_id, contact_id=customer)
    assert journey is not None
    await rt.drain()
    assert await _path(rt, journey) == [("start", "next"), ("crm", "next"), ("welcome", "next")]


@pytest.mark.parametrize(
    ("node_type", "config"),
    [
        (SendWebhook, {"url": "https://crm.test/hook", "secret": SECRET}),
        (SendEmail, {"subject": "Hi", "body": "Hello"}),
        (SendSms, {"text": "Hi"}),
    ],
)
async def test_the_email_sms_and_webhook_steps_offer_delivery_ports(
    node_type: Any, config: dict[str, Any]
) -> None:
    waiting = {**config, "wait_for_delivery": True}
    assert [p.id for p in node_type.output_ports(node_type.parse_config(waiting))] == [
        "delivered",
        "failed",
    ]
    assert [p.id for p in node_type.output_ports(node_type.parse_config(config))] == ["next"]
    who = contact(phone="+46701234567")
    parked = await run_node(node_type, waiting, profile=who, node_id="n", journey_id=5)
    assert parked.wait is not None and parked.wait.event is not None
    assert dict(parked.wait.event.match) == {"message": "j5:n:1:0"}
    assert len(parked.messages) == 1
    answer = event("message.outcome", {"message": "j5:n:1:0", "outcome": "failed", "reason": "no"})
    failed = await run_node(node_type, waiting, profile=who, node_id="n", wake=event_wake(answer))
    assert (failed.port, failed.data["n"]["reason"]) == ("failed", "no")
    late = await run_node(node_type, waiting, profile=who, node_id="n", wake=timer_wake())
    assert late.port == "failed"
    if node_type is not SendWebhook:
        nobody = await run_node(node_type, waiting, profile=contact(email=None), node_id="n")
        assert nobody.port == "failed"


async def test_a_delivery_settles_once(rt: Runtime, hook: Receiver, clock: FakeClock) -> None:
    [customer] = await add_contacts(rt, 1)
    flow_id = await publish(rt, _flow(f"{hook.url}/hook"))
    journey = await rt.start(flow_id, contact_id=customer)
    assert journey is not None
    await rt.drain()
    clock.advance(days=1)
    await rt.drain()
    assert len(hook.received()) == 1
    assert await _path(rt, journey) == [
        ("start", "next"),
        ("crm", "delivered"),
        ("welcome", "next"),
    ]


async def test_test_mode_delivers_unless_told_otherwise() -> None:
    raw = _flow("https://crm.test/hook")
    who = contact()
    went = await simulate(raw, builtin_registry(), who, [], start=DEFAULT_NOW, services=Services())
    assert [(s.node_id, s.kind, s.port) for s in went.steps][1:] == [
        ("crm", "waited", None),
        ("crm", "went", "delivered"),
        ("welcome", "went", "next"),
    ]
    refused = event(
        "message.outcome",
        {"outcome": "failed", "reason": "HTTP 400"},
        at=DEFAULT_NOW + timedelta(minutes=1),
    )
    failed = await simulate(
        raw, builtin_registry(), who, [refused], start=DEFAULT_NOW, services=Services()
    )
    assert [s.port for s in failed.steps if s.kind == "went"] == ["next", "failed", "next"]
