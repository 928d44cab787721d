"""Property: on random flows, random events and random time jumps, journeys stay consistent.

After every drain each journey is terminal or waiting, its run history is a
path through the graph with one row per (node, visit), and every message
produced was delivered once.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.models import OutboxMessage
from runtime.clock import FakeClock
from runtime.engine import Runtime
from runtime.versions import VersionCache
from tests.runtime.conftest import Mailbox, add_contacts, journeys, publish, steps, update_contact
from tests.support.stores import truncate_all

EXAMPLES = int(os.environ.get("RUNTIME_EXAMPLES", "30"))
PG_EXAMPLES = int(os.environ.get("RUNTIME_PG_EXAMPLES", "10"))
EVENTS = ("e.a", "e.b")
START = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)

# (type, config strategy, output ports)
KINDS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "test.email": (st.just({"subject": "s"}), ("next",)),
    "test.wait": (st.fixed_dictionaries({"hours": st.sampled_from([1, 5, 24])}), ("next",)),
    "test.wait_event": (
        st.fixed_dictionaries(
            {"event_type": st.sampled_from(EVENTS), "timeout_hours": st.sampled_from([2, 12])}
        ),
        ("event", "timeout"),
    ),
    "test.condition": (st.just({"attribute": "vip"}), ("yes", "no")),
    "test.saw_event": (st.just({"event_type": "e.a"}), ("yes", "no")),
    "test.split": (st.fixed_dictionaries({"percent_a": st.sampled_from([0, 50, 100])}), ("a", "b")),
    "test.tag": (
        st.fixed_dictionaries(
            {"tag": st.just("x"), "attribute": st.just("vip"), "value": st.booleans()}
        ),
        ("next",),
    ),
    "test.end": (st.just({}), ()),
}


@st.composite
def flows(draw: st.DrawFn) -> dict[str, Any]:
    """A valid flow: a trigger, then nodes whose ports lead forward, or back into a wait."""
    count = draw(st.integers(1, 8))
    nodes = [("n0", "test.trigger", {"event_type": "signed.up"}, ("next",))]
    for n in range(1, count + 1):
        # Event waits are drawn more often, so that events often find someone waiting.
        kind = draw(st.sampled_from([*sorted(KINDS), "test.wait_event", "test.wait_event"]))
        config_strategy, ports = KINDS[kind]
        nodes.append((f"n{n}", kind, draw(config_strategy), ports))
    edges: list[tuple[str, str, str]] = []
    for index, (node_id, _, _, ports) in enumerate(nodes):
        for port in ports:
            later = [n[0] for n in nodes[index + 1 :]]
            # A loop is valid only through a wait: allow edges back into duration waits.
            loops = [n[0] for n in nodes[1 : index + 1] if n[1] == "test.wait"]
            target = draw(st.sampled_from([None, *later, *loops]))
            if target is not None:
                edges.append((node_id, port, target))
    reachable, frontier = {"n0"}, ["n0"]
    while frontier:
        current = frontier.pop()
        for source, _, target in edges:
            if source == current and target not in reachable:
                reachable.add(target)
                frontier.append(target)
    return {
        "nodes": [{"id": i, "type": t, "config": c} for i, t, c, _ in nodes if i in reachable],
        "edges": [{"source": s, "port": p, "target": t} for s, p, t in edges if s in reachable],
    }


actions = st.lists(
    st.one_of(
        st.tuples(st.just("enter"), st.integers(0, 2)),
        st.tuples(st.sampled_from(EVENTS), st.integers(0, 2)),
        st.tuples(st.just("e.a"), st.integers(0, 2)),
        st.tuples(st.just("advance"), st.sampled_from([1, 2, 6, 13, 30])),
    ),
    min_size=2,
    max_size=16,
)


async def _check(rt: Runtime, flow: dict[str, Any], mailbox: Mailbox, now: Any) -> bool:
    """Assert the invariants after a drain; returns whether any journey is still waiting."""
    routes = {(e["source"], e["port"]): e["target"] for e in flow["edges"]}
    history = await steps(rt)
    assert len({(s.journey_id, s.node_id, s.visit) for s in history}) == len(history)
    by_journey: dict[int, list[Any]] = {}
    for step in history:
        by_journey.setdefault(step.journey_id, []).append(step)
    everyone = await journeys(rt)
    for journey in everyone:
        path = by_journey.get(journey.id, [])
        assert journey.status in {"completed", "exited", "waiting"}, journey.status
        assert path and path[0].node_id == "n0"
        for before, after in pairwise(path):
            assert before.status == "done"
            assert routes.get((before.node_id, before.port)) == after.node_id
        visits = Counter(s.node_id for s in path)
        for node_id, seen in visits.items():
            assert sorted(s.visit for s in path if s.node_id == node_id) == list(range(1, seen + 1))
        assert journey.visits == dict(visits)
        last = path[-1]
        if journey.status == "waiting":
            assert (last.status, last.node_id) == ("waiting", journey.node_id)
            assert journey.due_at is not None and journey.due_at > now
        else:
            assert journey.status == "completed" and journey.due_at is None
            assert last.status == "ended" or routes.get((last.node_id, last.port)) is None
    emails = [s for s in history if s.node_type == "test.email" and s.status == "done"]
    async with rt.sessions() as session:
        messages = (await session.execute(select(OutboxMessage))).scalars().all()
    assert sorted(m.idempotency_key for m in messages) == sorted(
        f"j{s.journey_id}:{s.node_id}:{s.visit}:0" for s in emails
    )
    assert {m.status for m in messages} <= {"sent"}
    assert len(mailbox.messages) == len(set(mailbox.message_ids())) == len(messages)
    return any(journey.status == "waiting" for journey in everyone)


async def _run(
    runtime: Runtime,
    engine: AsyncEngine,
    clock: FakeClock,
    mailbox: Mailbox,
    flow: dict[str, Any],
    script: list[tuple[str, int]],
    vips: list[bool],
) -> None:
    await truncate_all(engine)
    clock.set(START)
    with mailbox.lock:
        mailbox.messages.clear()
    runtime.versions = VersionCache(runtime.registry)  # ids restart with the emptied tables
    ids = await add_contacts(runtime, 3)
    for contact, vip in zip(ids, vips, strict=True):
        await update_contact(runtime, contact, attributes={"vip": vip})
    await publish(runtime, flow)
    # Everyone enters once at the start; the script may bring them back later.
    for action, value in [("enter", 0), ("enter", 1), ("enter", 2), *script]:
        if action == "advance":
            clock.advance(hours=value)
        elif action == "enter":
            await runtime.ingest("signed.up", contact_id=ids[value])
        else:
            await runtime.ingest(action, contact_id=ids[value])
        await runtime.drain()
        waiting = await _check(runtime, flow, mailbox, clock.now())
    # Then time runs on, two days per drain, for up to twenty days: waits chained one
    # after another all end. Once nobody waits (every message is sent, _check says so),
    # no later drain has anything to do: the run stops there.
    for _ in range(10):
        if not waiting:
            break
        clock.advance(hours=48)
        await runtime.drain()
        waiting = await _check(runtime, flow, mailbox, clock.now())
    order = [n["id"] for n in flow["nodes"]]
    if all(order.index(e["target"]) > order.index(e["source"]) for e in flow["edges"]):
        # Without a loop every path ends: twenty days later everyone is done.
        assert {j.status for j in await journeys(runtime)} <= {"completed"}
    else:
        event("a loop through a wait")
    history = await steps(runtime)
    event(f"{len(await journeys(runtime))} journeys")
    event("most visits: " + str(max((s.visit for s in history), default=0)))
    for step in history:
        if step.output.get("woke"):
            event(f"woken by {step.output['woke']['reason']}")


_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
_GIVEN = given(flow=flows(), script=actions, vips=st.lists(st.booleans(), min_size=3, max_size=3))


@pytest.mark.long
@settings(max_examples=EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@_GIVEN
async def test_random_flows_and_event_orders_on_sqlite(
    runtime: Runtime,
    engine: AsyncEngine,
    clock: FakeClock,
    mailbox: Mailbox,
    flow: dict[str, Any],
    script: list[tuple[str, int]],
    vips: list[bool],
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the long run is on SQLite; PostgreSQL has a shorter one")
    await _run(runtime, engine, clock, mailbox, flow, script, vips)


@pytest.mark.long
@settings(max_examples=PG_EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@_GIVEN
async def test_random_flows_and_event_orders_on_postgresql(
    runtime: Runtime,
    engine: AsyncEngine,
    clock: FakeClock,
    mailbox: Mailbox,
    flow: dict[str, Any],
    script: list[tuple[str, int]],
    vips: list[bool],
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("covered by the SQLite run")
    await _run(runtime, engine, clock, mailbox, flow, script, vips)
