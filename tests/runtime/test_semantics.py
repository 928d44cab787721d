"""Flow semantics: graph validation, re-entry, exit rules, and the run history each step leaves."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from backend.models import Contact, Step
from runtime import admin, flows
from runtime.clock import FakeClock
from runtime.engine import Runtime
from runtime.graph import FlowGraph, InvalidGraph, parse_graph, validate_graph
from tests.runtime.conftest import (
    Mailbox,
    add_contacts,
    journeys,
    publish,
    steps,
    update_contact,
)
from tests.runtime.nodes import graph, test_registry

TRIGGER = ("t", "test.trigger", {"event_type": "signed.up"})


def _errors(raw: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(e.node_id, e.message) for e in validate_graph(FlowGraph.model_validate(raw), REG)]


REG = test_registry()


# -- validation ---------------------------------------------------------------------------------


def test_a_loop_without_a_wait_is_rejected_naming_its_nodes() -> None:
    loop = graph(
        [TRIGGER, ("a", "test.tag", {"tag": "x"}), ("b", "test.condition", {"attribute": "x"})],
        [("t", "next", "a"), ("a", "next", "b"), ("b", "no", "a")],
    )
    [(node, message)] = _errors(loop)
    assert node in {"a", "b"}
    assert "loop has no wait" in message
    assert "a -> b -> a" in message or "b -> a -> b" in message


def test_a_loop_through_a_wait_is_allowed() -> None:
    loop = graph(
        [TRIGGER, ("w", "test.wait", {"hours": 1}), ("b", "test.condition", {"attribute": "x"})],
        [("t", "next", "w"), ("w", "next", "b"), ("b", "no", "w")],
    )
    assert _errors(loop) == []


def test_dangling_ports_and_edges_name_the_source_node() -> None:
    raw = graph(
        [
            TRIGGER,
            ("c", "test.condition", {"attribute": "vip"}),
            ("m", "test.email", {"subject": "x"}),
        ],
        [("t", "next", "c"), ("c", "maybe", "m"), ("c", "yes", "m"), ("m", "next", "ghost")],
    )
    assert sorted(_errors(raw)) == [
        ("c", "this node has no output port 'maybe'"),
        ("m", "port 'next' leads to missing node 'ghost'"),
    ]


def test_unreachable_unknown_and_misconfigured_nodes_are_named() -> None:
    raw = graph(
        [
            TRIGGER,
            ("lost", "test.email", {"subject": "never sent"}),
            ("odd", "test.teleport", {}),
            ("bad", "test.wait", {"hours": "soon"}),
        ],
        [("t", "next", "bad"), ("bad", "next", "odd")],
    )
    errors = validate_graph(FlowGraph.model_validate(raw), REG)
    by_node = {(e.node_id, e.field): e.message for e in errors}
    assert by_node[("lost", None)] == "no trigger leads to this node"
    assert by_node[("odd", None)] == "unknown node type 'test.teleport'"
    assert "valid number" in by_node[("bad", "hours")]
    assert "node 'bad', field 'hours'" in str(InvalidGraph(errors))


def test_a_flow_without_a_trigger_and_a_connected_trigger_are_rejected() -> None:
    raw = graph(
        [
            TRIGGER,
            ("m", "test.email", {"subject": "x"}),
            ("t2", "test.trigger", {"event_type": "x"}),
        ],
        [("t", "next", "m"), ("m", "next", "t2")],
    )
    assert _errors(raw) == [("t2", "a trigger cannot have incoming connections")]
    no_trigger = graph([("m", "test.email", {"subject": "x"})], [])
    assert ("m", "no trigger leads to this node") not in _errors(no_trigger)
    assert (None, "the flow needs a trigger to enroll anyone") in _errors(no_trigger)


async def test_publishing_an_invalid_draft_fails_and_freezes_nothing(runtime: Runtime) -> None:
    raw = graph([TRIGGER, ("m", "test.email", {})], [("t", "next", "m")])
    async with runtime.sessions() as session, session.begin():
        flow = await flows.create_flow(session, "Broken", graph=raw)
        with pytest.raises(InvalidGraph) as caught:
            await flows.publish(session, flow.id, runtime.registry)
        assert [(e.node_id, e.field) for e in caught.value.errors] == [("m", "subject")]
        assert flow.published_version_id is None and flow.status == "draft"
    with pytest.raises(InvalidGraph):
        parse_graph({"nodes": [{"id": "has space", "type": "x"}]}, REG)


# -- re-entry ------------------------------------------------------------------------------------


def _waiting_flow(**settings: Any) -> dict[str, Any]:
    return graph(
        [TRIGGER, ("w", "test.wait", {"hours": 24}), ("m", "test.email", {"subject": "Hi"})],
        [("t", "next", "w"), ("w", "next", "m")],
        **settings,
    )


async def _enter(rt: Runtime, contact: int) -> bool:
    return bool((await rt.ingest("signed.up", contact_id=contact)).enrolled)


async def test_once_at_a_time_lets_a_customer_back_in_after_the_journey_ends(
    runtime: Runtime, clock: FakeClock
) -> None:
    [contact] = await add_contacts(runtime, 1)
    await publish(runtime, _waiting_flow())
    assert await _enter(runtime, contact)
    await runtime.drain()
    assert not await _enter(runtime, contact)  # still waiting in the flow
    clock.advance(hours=24)
    await runtime.drain()
    assert await _enter(runtime, contact)
    assert [j.status for j in await journeys(runtime)] == ["completed", "active"]


async def test_once_ever_refuses_a_second_journey(runtime: Runtime, clock: FakeClock) -> None:
    [contact, other] = await add_contacts(runtime, 2)
    await publish(runtime, _waiting_flow(reentry="once"))
    assert await _enter(runtime, contact)
    await runtime.drain()
    clock.advance(hours=24)
    await runtime.drain()
    clock.advance(days=400)
    assert not await _enter(runtime, contact)
    assert await _enter(runtime, other)
    assert [(j.contact_id, j.status) for j in await journeys(runtime)] == [
        (contact, "completed"),
        (other, "active"),
    ]


async def test_again_after_n_days_counts_from_the_last_entry(
    runtime: Runtime, clock: FakeClock
) -> None:
    [contact] = await add_contacts(runtime, 1)
    await publish(runtime, _waiting_flow(reentry="after_days", reentry_days=3))
    assert await _enter(runtime, contact)
    await runtime.drain()
    clock.advance(hours=24)
    await runtime.drain()
    clock.advance(days=1)
    assert not await _enter(runtime, contact)  # two days after entering
    clock.advance(days=1, seconds=1)
    assert await _enter(runtime, contact)  # just over three days
    assert [j.status for j in await journeys(runtime)] == ["completed", "active"]


async def test_set_based_enrollment_honours_the_policy(runtime: Runtime) -> None:
    ids = await add_contacts(runtime, 4)
    flow_id = await publish(runtime, _waiting_flow(reentry="once"))
    assert await runtime.enroll_audience(flow_id, Contact.id.in_(ids[:2])) == 2
    assert await runtime.enroll_audience(flow_id, Contact.id.in_(ids)) == 2
    assert sorted(j.contact_id for j in await journeys(runtime)) == sorted(ids)


# -- exit rules -----------------------------------------------------------------------------------


def _goal_flow(**settings: Any) -> dict[str, Any]:
    return graph(
        [
            TRIGGER,
            ("w", "test.wait", {"hours": 48}),
            ("m", "test.email", {"subject": "Still thinking?"}),
            ("bought", "test.goal", {"event_type": "order.placed"}),
        ],
        [("t", "next", "w"), ("w", "next", "m"), ("m", "next", "bought")],
        **settings,
    )


async def test_reaching_the_goal_ends_a_waiting_journey(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    [contact] = await add_contacts(runtime, 1)
    await publish(runtime, _goal_flow())
    await _enter(runtime, contact)
    await runtime.drain()
    clock.advance(hours=3)
    result = await runtime.ingest("order.placed", contact_id=contact)
    assert len(result.goals) == 1
    await runtime.drain()
    clock.advance(days=5)
    await runtime.drain()
    [journey] = await journeys(runtime)
    assert (journey.status, journey.exit_reason) == ("completed", "goal reached")
    history = [(s.node_id, s.status, s.output.get("interrupted")) for s in await steps(runtime)]
    assert history == [
        ("t", "done", None),
        ("w", "ended", "goal_reached"),
        ("bought", "ended", None),
    ]
    assert mailbox.messages == []


async def test_a_goal_is_ignored_when_the_flow_does_not_exit_on_it(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    [contact] = await add_contacts(runtime, 1)
    await publish(runtime, _goal_flow(exit_on=["unsubscribed"]))
    await _enter(runtime, contact)
    await runtime.drain()
    assert (await runtime.ingest("order.placed", contact_id=contact)).goals == ()
    clock.advance(hours=48)
    await runtime.drain()
    assert mailbox.subjects() == ["Still thinking?"]


async def test_unsubscribing_exits_at_the_next_step_without_sending(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    [leaving, staying] = await add_contacts(runtime, 2)
    await publish(runtime, _goal_flow())
    for contact in (leaving, staying):
        await _enter(runtime, contact)
    await runtime.drain()
    await update_contact(runtime, leaving, consent={"email": {"granted": False}})
    clock.advance(hours=48)
    await runtime.drain()
    by_contact = {j.contact_id: j for j in await journeys(runtime)}
    assert (by_contact[leaving].status, by_contact[leaving].exit_reason) == (
        "exited",
        "unsubscribed",
    )
    assert by_contact[staying].status == "completed"
    assert [m["To"] for m in mailbox.messages] == [f"c{staying}@example.test"]
    wait_step = next(s for s in await steps(runtime, by_contact[leaving].id) if s.node_id == "w")
    assert (wait_step.status, wait_step.output) == ("ended", {"interrupted": "unsubscribed"})


async def test_unsubscribed_from_marketing_still_gets_the_flows_transactional_messages(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    """Default exit rules: the download confirmation goes, the marketing after it does not."""
    [contact] = await add_contacts(runtime, 1)
    await update_contact(runtime, contact, consent={"email": {"granted": False}})
    await publish(
        runtime,
        graph(
            [
                TRIGGER,
                (
                    "confirm",
                    "test.email",
                    {"subject": "Your download", "category": "transactional"},
                ),
                ("w", "test.wait", {"hours": 24}),
                ("m", "test.email", {"subject": "Did you like it?"}),
            ],
            [("t", "next", "confirm"), ("confirm", "next", "w"), ("w", "next", "m")],
        ),
    )
    assert await _enter(runtime, contact)
    await runtime.drain()
    clock.advance(hours=24)
    await runtime.drain()
    assert mailbox.subjects() == ["Your download"]
    [journey] = await journeys(runtime)
    assert (journey.status, journey.exit_reason) == ("exited", "unsubscribed")
    ran = [(s.node_id, s.status) for s in await steps(runtime, journey.id)]
    assert ran[:2] == [("t", "done"), ("confirm", "done")]
    assert "m" not in [node for node, _ in ran]


async def test_leaving_the_audience_exits_only_where_the_flow_says_so(
    runtime: Runtime, clock: FakeClock
) -> None:
    [lead, customer] = await add_contacts(runtime, 2)
    strict = await publish(runtime, _goal_flow(exit_on=["left_audience"]), "Strict")
    loose = await publish(
        runtime,
        graph([("t", "test.trigger", {"event_type": "other"}), ("w", "test.wait", {"hours": 9})],
              [("t", "next", "w")]),
        "Loose",
    )  # fmt: skip
    for contact in (lead, customer):
        await _enter(runtime, contact)
        await runtime.ingest("other", contact_id=contact)
    await runtime.drain()
    await update_contact(runtime, customer, lifecycle_stage="customer")
    async with runtime.sessions() as session, session.begin():
        in_audience = Contact.lifecycle_stage != "customer"
        now = clock.now()
        assert await admin.exit_left_audience(session, strict, in_audience, now=now) == 1
        assert await admin.exit_left_audience(session, loose, in_audience, now=now) == 0
    state = {(j.flow_id, j.contact_id): (j.status, j.exit_reason) for j in await journeys(runtime)}
    assert state == {
        (strict, lead): ("waiting", None),
        (strict, customer): ("exited", "left_audience"),
        (loose, lead): ("waiting", None),
        (loose, customer): ("waiting", None),
    }


async def test_a_paused_flow_holds_journeys_and_enrolls_nobody(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    [early, late] = await add_contacts(runtime, 2)
    flow_id = await publish(runtime, _waiting_flow())
    await _enter(runtime, early)
    await runtime.drain()
    async with runtime.sessions() as session, session.begin():
        await flows.pause(session, flow_id)
    assert not await _enter(runtime, late)
    clock.advance(hours=30)
    assert (await runtime.drain()).claimed == 0
    assert [j.status for j in await journeys(runtime)] == ["waiting"]
    async with runtime.sessions() as session, session.begin():
        await flows.resume(session, flow_id)
    await runtime.drain()
    assert [j.status for j in await journeys(runtime)] == ["completed"]
    assert mailbox.subjects() == ["Hi"]


async def test_archiving_exits_live_journeys_and_closes_their_waits(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    contacts = await add_contacts(runtime, 3)
    flow_id = await publish(runtime, _waiting_flow())
    for contact in contacts:
        await _enter(runtime, contact)
    await runtime.drain()
    async with runtime.sessions() as session, session.begin():
        assert await flows.archive(session, flow_id, now=clock.now()) == 3
    assert not await _enter(runtime, contacts[0])
    clock.advance(days=3)
    assert (await runtime.drain()).claimed == 0
    ended = await journeys(runtime)
    assert {(j.status, j.exit_reason, j.entry_key) for j in ended} == {
        ("exited", "flow_stopped", None)
    }
    assert {(s.node_id, s.status) for s in await steps(runtime)} == {("t", "done"), ("w", "ended")}
    assert mailbox.messages == []


# -- the run history --------------------------------------------------------------------------


async def test_every_executed_node_writes_one_step_row(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    [contact] = await add_contacts(runtime, 1)
    await publish(
        runtime,
        graph(
            [
                TRIGGER,
                ("tag", "test.tag", {"tag": "new", "attribute": "vip", "value": True}),
                ("vip", "test.condition", {"attribute": "vip"}),
                ("mail", "test.email", {"subject": "For VIPs"}),
                ("w", "test.wait", {"hours": 2}),
                ("end", "test.end", {"reason": "all done"}),
            ],
            [
                ("t", "next", "tag"),
                ("tag", "next", "vip"),
                ("vip", "yes", "mail"),
                ("mail", "next", "w"),
                ("w", "next", "end"),
            ],
        ),
    )
    entered = clock.now()
    await runtime.ingest("signed.up", contact_id=contact, properties={"plan": "pro"})
    await runtime.drain()
    clock.advance(hours=2)
    await runtime.drain()

    [journey] = await journeys(runtime)
    history = await steps(runtime, journey.id)
    assert [(s.node_id, s.visit, s.node_type, s.status, s.port) for s in history] == [
        ("t", 1, "test.trigger", "done", "next"),
        ("tag", 1, "test.tag", "done", "next"),
        ("vip", 1, "test.condition", "done", "yes"),
        ("mail", 1, "test.email", "done", "next"),
        ("w", 1, "test.wait", "done", "next"),
        ("end", 1, "test.end", "ended", None),
    ]
    trigger = {"trigger": {"event_id": 1, "type": "signed.up", "properties": {"plan": "pro"}}}
    assert all(s.input == trigger for s in history)
    assert history[1].output == {"changes": {"set": {"vip": True}, "add_tags": ["new"]}}
    [message_key] = history[3].output["messages"]
    assert message_key == f"j{journey.id}:mail:1:0"
    assert history[4].output["woke"] == {"reason": "timer", "event_id": None}
    assert history[5].output == {"reason": "all done"}
    assert [s.started_at for s in history] == [entered] * 5 + [entered + timedelta(hours=2)]
    assert history[4].finished_at == entered + timedelta(hours=2)
    assert all(s.error is None and s.duration_ms is not None for s in history)
    assert (journey.status, journey.exit_reason) == ("completed", "all done")
    assert mailbox.subjects() == ["For VIPs"]
    async with runtime.sessions() as session:
        tags = await session.scalar(select(Contact.tags).where(Contact.id == contact))
    assert tags == ["new"]


async def test_step_keys_count_visits_and_are_unique(runtime: Runtime, clock: FakeClock) -> None:
    [contact] = await add_contacts(runtime, 1)
    await publish(
        runtime,
        graph(
            [
                TRIGGER,
                ("w", "test.wait", {"hours": 1}),
                ("done", "test.condition", {"attribute": "stop"}),
            ],
            [("t", "next", "w"), ("w", "next", "done"), ("done", "no", "w")],
        ),
    )
    await _enter(runtime, contact)
    await runtime.drain()
    for _ in range(3):
        clock.advance(hours=1)
        await runtime.drain()
    await update_contact(runtime, contact, attributes={"stop": True})
    clock.advance(hours=1)
    await runtime.drain()
    [journey] = await journeys(runtime)
    assert journey.status == "completed" and journey.visits == {"t": 1, "w": 4, "done": 4}
    keys = [(s.node_id, s.visit, s.port) for s in await steps(runtime)]
    expected = [("t", 1, "next")]
    for n in range(1, 5):
        expected += [("w", n, "next"), ("done", n, "yes" if n == 4 else "no")]
    assert keys == expected
    async with runtime.sessions() as session:
        with pytest.raises(IntegrityError):
            async with session.begin():
                await session.execute(
                    insert(Step).values(
                        journey_id=journey.id, node_id="w", visit=2, node_type="x", status="done"
                    )
                )
