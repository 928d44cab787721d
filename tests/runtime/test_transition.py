"""One transition: test mode walks a customer exactly where the engine does.

The property runs random flows (the generator of ``test_property``, without
loops), random customers (VIP or not, consent withdrawn or not) and random
events through ``runtime.simulate`` and through the real engine on the
database, and compares the paths node by node, port by port, and how each
journey ended.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.models import Journey
from nodes.sdk import EventRecord
from runtime.clock import FakeClock
from runtime.engine import Runtime
from runtime.profiles import load_profiles
from runtime.simulate import Simulation, simulate
from runtime.versions import VersionCache
from tests.runtime.conftest import add_contacts, journeys, publish, steps, update_contact
from tests.runtime.nodes import graph
from tests.runtime.test_property import EVENTS, flows
from tests.support.stores import truncate_all

EXAMPLES = int(os.environ.get("TRANSITION_EXAMPLES", "25"))
PG_EXAMPLES = int(os.environ.get("TRANSITION_PG_EXAMPLES", "5"))
START = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
# Events happen 7 minutes past an hour; waits end on the hour, so no event ties a timer.
PAST_THE_HOUR = timedelta(minutes=7)


def _acyclic(flow: dict[str, Any]) -> bool:
    order = [n["id"] for n in flow["nodes"]]
    return all(order.index(e["target"]) > order.index(e["source"]) for e in flow["edges"])


def _simulated_path(run: Simulation) -> tuple[list[tuple[str, str | None]], str]:
    """(node, port) for each node passed, with None where a node ended the journey; the ending.

    An exit on unsubscribe is left to the ending: the engine records it at a
    wait it interrupts, test mode wherever the customer is.
    """
    path: list[tuple[str, str | None]] = []
    for step in run.steps:
        if step.kind == "went":
            path.append((step.node_id, step.port))
        elif step.kind == "ended" and step.reason != "unsubscribed":
            path.append((step.node_id, None))
    ending: str = run.ending
    if run.ending == "went_nowhere":
        ending = "completed"
    elif run.ending == "ended":
        ending = run.steps[-1].end or "completed"
    return path, ending


async def _engine_path(rt: Runtime) -> tuple[list[tuple[str, str | None]], str]:
    [journey] = await journeys(rt)
    path: list[tuple[str, str | None]] = []
    for step in await steps(rt, journey.id):
        if step.status == "done":
            path.append((step.node_id, step.port))
        elif step.status == "ended" and "interrupted" not in step.output:
            path.append((step.node_id, None))
    return path, journey.status


async def _run_until(rt: Runtime, clock: FakeClock, moment: datetime) -> None:
    """Move the clock to each due time before ``moment`` and drain there, as simulated time does.

    (Draining once at ``moment`` would start the next wait late, from the drain.)
    """
    while True:
        async with rt.sessions() as session:
            due = await session.scalar(
                select(func.min(Journey.due_at)).where(
                    Journey.status.in_(("active", "waiting")), Journey.due_at <= moment
                )
            )
        if due is None:
            break
        clock.set(max(due, clock.now()))
        await rt.drain()
    clock.set(moment)


async def _compare(
    runtime: Runtime,
    engine: AsyncEngine,
    clock: FakeClock,
    flow: dict[str, Any],
    exit_on: list[str],
    vip: bool,
    withdrawn: bool,
    hours: list[int],
) -> None:
    await truncate_all(engine)
    clock.set(START)
    runtime.versions = VersionCache(runtime.registry)  # ids restart with the emptied tables
    [contact] = await add_contacts(runtime, 1)
    consent = {"email": {"granted": False}} if withdrawn else {}
    await update_contact(runtime, contact, attributes={"vip": vip}, consent=consent)
    raw = flow | {"settings": {"exit_on": exit_on}}
    flow_id = await publish(runtime, raw)
    script = [
        EventRecord(EVENTS[n % 2], START + timedelta(hours=h) + PAST_THE_HOUR, id=n + 2)
        for n, h in enumerate(sorted(set(hours)))
    ]

    async with runtime.sessions() as session:
        profile = (await load_profiles(session, [contact], []))[("contact", str(contact))]
    entry = EventRecord("signed.up", START, id=1)
    simulated = await simulate(
        raw,
        runtime.registry,
        profile,
        [entry, *script],
        start=START,
        services=runtime.services,
        flow_id=flow_id,
    )

    await runtime.ingest("signed.up", contact_id=contact)
    await runtime.drain()
    for record in script:
        await _run_until(runtime, clock, record.occurred_at)
        await runtime.ingest(record.type, contact_id=contact)
        await runtime.drain()
    await _run_until(runtime, clock, START + timedelta(days=20))  # every wait runs out

    engine_path = await _engine_path(runtime)
    assert engine_path == _simulated_path(simulated), (raw, script, simulated.steps)
    event(f"ended: {simulated.ending}, {len(simulated.steps)} steps")


_SETTINGS = {
    "deadline": None,
    "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
_GIVEN = given(
    flow=flows().filter(_acyclic),
    exit_on=st.sampled_from([["unsubscribed"], []]),
    vip=st.booleans(),
    withdrawn=st.booleans(),
    hours=st.lists(st.integers(0, 40), max_size=5),
)


@settings(max_examples=EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@_GIVEN
async def test_test_mode_takes_the_engines_path_on_sqlite(
    runtime: Runtime,
    engine: AsyncEngine,
    clock: FakeClock,
    flow: dict[str, Any],
    exit_on: list[str],
    vip: bool,
    withdrawn: bool,
    hours: list[int],
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the long run is on SQLite; PostgreSQL has a shorter one")
    await _compare(runtime, engine, clock, flow, exit_on, vip, withdrawn, hours)


@settings(max_examples=PG_EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@_GIVEN
async def test_test_mode_takes_the_engines_path_on_postgresql(
    runtime: Runtime,
    engine: AsyncEngine,
    clock: FakeClock,
    flow: dict[str, Any],
    exit_on: list[str],
    vip: bool,
    withdrawn: bool,
    hours: list[int],
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("covered by the SQLite run")
    await _compare(runtime, engine, clock, flow, exit_on, vip, withdrawn, hours)


async def test_the_engine_fails_a_step_on_an_undeclared_port(runtime: Runtime) -> None:
    [contact] = await add_contacts(runtime, 1)
    await publish(
        runtime,
        graph(
            [("t", "test.trigger", {"event_type": "go"}), ("s", "test.stray", {})],
            [("t", "next", "s")],
        ),
    )
    await runtime.ingest("go", contact_id=contact)
    await runtime.drain()
    stray = [s for s in await steps(runtime) if s.node_id == "s"]
    assert stray and stray[0].status == "error"
    assert stray[0].error is not None and stray[0].error.startswith("UndeclaredPort:")
