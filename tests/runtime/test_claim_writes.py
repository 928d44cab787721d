"""A claimed walk writes its journey row once: the claim itself writes only a lease row.

Issue 15: a step used to update each journey twice (the lease, then the
cursor). Every statement that changes ``journeys`` is counted here, with the
rows it changed, by a listener on the real engine: one row per journey per
claim, whatever the walk does (walk on, park in a wait, end).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, func, select

from backend.models import Journey, Step
from nodes.sdk import Services
from runtime.claims import claim_journeys
from runtime.clock import FakeClock
from runtime.engine import Runtime
from runtime.models import JourneyLease
from tests.runtime.conftest import add_contacts, publish
from tests.runtime.nodes import graph

_WRITES = re.compile(r"^\s*(UPDATE|INSERT INTO|DELETE FROM)\s+journeys\b", re.IGNORECASE)


class _Writes:
    """Statements that change ``journeys`` and the rows they changed, in order."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.rows = 0

    def after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if _WRITES.match(statement):
            self.statements.append(statement.split(None, 1)[0].upper())
            self.rows += max(cursor.rowcount, 0)


@contextmanager
def _counting(rt: Runtime) -> Iterator[_Writes]:
    engine = rt.sessions.kw["bind"].sync_engine
    writes = _Writes()
    event.listen(engine, "after_cursor_execute", writes.after)
    try:
        yield writes
    finally:
        event.remove(engine, "after_cursor_execute", writes.after)


_FLOW = graph(
    [
        ("t", "test.trigger", {"event_type": "signed.up"}),
        ("hello", "test.email", {"subject": "Hello"}),
        ("w", "test.wait", {"hours": 1}),
        ("bye", "test.email", {"subject": "Bye"}),
    ],
    [("t", "next", "hello"), ("hello", "next", "w"), ("w", "next", "bye")],
)


async def _leases(rt: Runtime) -> int:
    async with rt.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(JourneyLease)) or 0)


async def test_each_claim_writes_each_journey_once(runtime: Runtime, clock: FakeClock) -> None:
    ids = await add_contacts(runtime, 12)
    await publish(runtime, _FLOW)
    for contact in ids:
        await runtime.ingest("signed.up", contact_id=contact)

    # First claim: trigger, email, into the wait. Batches of five: three claims.
    with _counting(runtime) as writes:
        reports = [await runtime.step(limit=5) for _ in range(4)]
    assert [r.claimed for r in reports] == [5, 5, 2, 0]
    assert sum(r.steps for r in reports) == 12 * 3
    assert writes.rows == 12
    assert writes.statements == ["UPDATE"] * 3  # one per batch, none by the claims
    assert await _leases(runtime) == 0  # every lease ended with its write

    # Second claim, woken by the timer: the wait's step, the email, the end.
    clock.advance(timedelta(hours=1, seconds=1))
    with _counting(runtime) as writes:
        report = await runtime.step()
    assert (report.claimed, report.steps, report.ended) == (12, 24, 12)
    assert writes.rows == 12
    assert writes.statements == ["UPDATE"]
    async with runtime.sessions() as session:
        done = (await session.execute(select(Journey.status, Journey.lease_owner))).all()
    assert set(done) == {("completed", None)}
    assert await _leases(runtime) == 0


async def test_a_claim_in_flight_is_a_lease_row_and_the_journey_is_untouched(
    runtime: Runtime, clock: FakeClock
) -> None:
    [contact] = await add_contacts(runtime, 1)
    await publish(runtime, _FLOW)
    await runtime.ingest("signed.up", contact_id=contact)
    async with runtime.sessions() as session:
        before = (await session.execute(select(Journey.updated_at, Journey.due_at))).one()
    with _counting(runtime) as writes:
        async with runtime.sessions() as session, session.begin():
            rows = await claim_journeys(
                session, owner="w:1", now=clock.now(), limit=10, lease=runtime.lease
            )
    assert len(rows) == 1 and writes.statements == []
    async with runtime.sessions() as session:
        after = (
            await session.execute(
                select(Journey.updated_at, Journey.due_at, Journey.lease_owner, Journey.lease_until)
            )
        ).one()
    # Readers still see the claim through Journey.lease_owner / lease_until.
    assert tuple(after) == (*before, "w:1", clock.now() + runtime.lease)
    # A second claim sees the lease and takes nothing, until it runs out.
    async with runtime.sessions() as session, session.begin():
        again = await claim_journeys(
            session, owner="w:2", now=clock.now(), limit=10, lease=runtime.lease
        )
    assert again == []
    later = clock.now() + runtime.lease + timedelta(seconds=1)
    async with runtime.sessions() as session, session.begin():
        taken = await claim_journeys(session, owner="w:3", now=later, limit=10, lease=runtime.lease)
    assert [r.id for r in taken] == [r.id for r in rows]
    async with runtime.sessions() as session:
        assert await session.scalar(select(JourneyLease.owner)) == "w:3"


async def test_an_event_takes_a_journey_from_the_worker_walking_it(
    runtime: Runtime, clock: FakeClock
) -> None:
    """The wake deletes the lease, so the walk in flight (on the timeout) writes nothing."""
    [contact] = await add_contacts(runtime, 1)
    await publish(
        runtime,
        graph(
            [
                ("t", "test.trigger", {"event_type": "signed.up"}),
                ("w", "test.wait_event", {"event_type": "app.opened", "timeout_hours": 1}),
                ("g", "test.gate", {}),
                ("end", "test.end", {}),
            ],
            [("t", "next", "w"), ("w", "event", "g"), ("w", "timeout", "g"), ("g", "next", "end")],
        ),
    )
    await runtime.ingest("signed.up", contact_id=contact)
    await runtime.drain()
    clock.advance(timedelta(hours=1, seconds=1))
    gate, at_gate = asyncio.Event(), asyncio.Event()
    stalled = Runtime(
        sessions=runtime.sessions,
        registry=runtime.registry,
        settings=runtime.settings,
        clock=clock,
        services=Services(extras={"gate": gate, "at_gate": at_gate}),
        worker_id="stalled",
    )
    walking = asyncio.create_task(stalled.step())
    await at_gate.wait()  # it took the timeout and sits in the gate
    assert len((await runtime.ingest("app.opened", contact_id=contact)).woken) == 1
    gate.set()
    late = await walking
    assert (late.claimed, late.written, late.steps) == (1, 0, 0)

    await runtime.drain()
    async with runtime.sessions() as session:
        status = await session.scalar(select(Journey.status))
        ports = (await session.execute(select(Step.node_id, Step.port).order_by(Step.id))).all()
    assert status == "completed"
    assert [tuple(p) for p in ports] == [
        ("t", "next"),
        ("w", "event"),
        ("g", "next"),
        ("end", None),
    ]
    assert await _leases(runtime) == 0
