"""Moving running journeys to a flow's new version: only where their step still fits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from backend.models import AuditEntry, FlowVersion, Journey
from runtime import flows
from runtime.clock import FakeClock
from runtime.engine import Runtime
from runtime.moves import Move, move_journeys, plan
from tests.runtime.conftest import Mailbox, add_contacts, journeys, publish
from tests.runtime.nodes import graph

TRIGGER = ("t", "test.trigger", {"event_type": "signed.up"})


def _flow(wait: tuple[str, str, dict[str, Any]], subject: str) -> dict[str, Any]:
    """Trigger -> ``wait`` -> an email with ``subject``."""
    nodes = [TRIGGER, wait, ("m", "test.email", {"subject": subject})]
    return graph(nodes, [("t", "next", wait[0]), (wait[0], "next", "m")])


V1 = _flow(("w", "test.wait", {"hours": 48}), "Old")


async def _waiting(runtime: Runtime, count: int) -> int:
    """Publish V1 and let ``count`` contacts enter; they wait at "w". Returns the flow id."""
    flow_id = await publish(runtime, V1)
    for contact in await add_contacts(runtime, count):
        await runtime.ingest("signed.up", contact_id=contact)
    await runtime.drain()
    assert {(j.status, j.node_id) for j in await journeys(runtime)} == {("waiting", "w")}
    return flow_id


async def _publish(runtime: Runtime, flow_id: int, draft: dict[str, Any]) -> int:
    async with runtime.sessions() as db, db.begin():
        await flows.save_draft(db, flow_id, draft)
        return (await flows.publish(db, flow_id, runtime.registry)).id


async def _versions(runtime: Runtime) -> list[int]:
    return [j.flow_version_id for j in await journeys(runtime)]


async def test_waiting_journeys_move_and_continue_on_the_new_version(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    flow_id = await _waiting(runtime, 3)
    [old] = set(await _versions(runtime))
    new = _flow(("w", "test.wait", {"hours": 48}), "New")
    async with runtime.sessions() as db:
        assert await plan(db, flow_id, new, now=clock.now()) == Move(moved=3)
    new_id = await _publish(runtime, flow_id, new)
    async with runtime.sessions() as db, db.begin():
        done = await move_journeys(db, flow_id, new_id, now=clock.now())
    assert done == Move(moved=3, version=2)
    assert set(await _versions(runtime)) == {new_id} != {old}
    # The wait goes on where it was: due on its old timer, then the new email goes out.
    assert {j.status for j in await journeys(runtime)} == {"waiting"}
    clock.advance(hours=48)
    await runtime.drain()
    assert mailbox.subjects() == ["New"] * 3
    async with runtime.sessions() as db:
        entry = await db.scalar(
            select(AuditEntry).where(AuditEntry.action == "flow.journeys_moved")
        )
    # The move is a fact for the web layer to record (with who asked); the runtime writes no
    # audit entry of its own.
    assert entry is None
    assert done.details() == {"version": 2, "moved": 3, "missing": {}, "busy": 0}


async def test_journeys_whose_step_is_gone_or_changed_type_stay(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    flow_id = await _waiting(runtime, 2)
    [old] = set(await _versions(runtime))
    renamed = _flow(("w2", "test.wait", {"hours": 48}), "Renamed")
    retyped = _flow(("w", "test.wait_until", {"at": "2030-01-01T00:00:00Z"}), "Retyped")
    async with runtime.sessions() as db:
        for draft in (renamed, retyped):
            assert await plan(db, flow_id, draft, now=clock.now()) == Move(
                moved=0, missing={"w": 2}
            )
    new_id = await _publish(runtime, flow_id, renamed)
    async with runtime.sessions() as db, db.begin():
        done = await move_journeys(db, flow_id, new_id, now=clock.now())
    assert (done.moved, done.staying, dict(done.missing)) == (0, 2, {"w": 2})
    assert set(await _versions(runtime)) == {old}
    clock.advance(hours=48)
    await runtime.drain()
    assert mailbox.subjects() == ["Old", "Old"]


async def test_a_journey_a_worker_holds_stays_and_the_new_versions_own_are_not_counted(
    runtime: Runtime, clock: FakeClock
) -> None:
    flow_id = await _waiting(runtime, 3)
    held = (await journeys(runtime))[0].id
    async with runtime.sessions() as db, db.begin():
        await db.execute(
            update(Journey)
            .where(Journey.id == held)
            .values(lease_owner="worker-1", lease_until=clock.now() + timedelta(minutes=1))
        )
    new = _flow(("w", "test.wait", {"hours": 1}), "New")
    async with runtime.sessions() as db:
        assert await plan(db, flow_id, new, now=clock.now()) == Move(moved=2, busy=1)
    new_id = await _publish(runtime, flow_id, new)
    async with runtime.sessions() as db, db.begin():
        assert await move_journeys(db, flow_id, new_id, now=clock.now()) == Move(
            moved=2, busy=1, version=2
        )
    moved = {j.id: j.flow_version_id for j in await journeys(runtime)}
    assert [j for j, v in moved.items() if v != new_id] == [held]
    # Counting again against the published version leaves its own journeys out.
    async with runtime.sessions() as db:
        assert await plan(db, flow_id, new, now=clock.now(), current=new_id) == Move(busy=1)
        # Once the lease ran out, the last one can move too.
        later = clock.now() + timedelta(minutes=2)
        assert await plan(db, flow_id, new, now=later, current=new_id) == Move(moved=1)


async def test_moving_to_another_flows_version_is_refused(runtime: Runtime) -> None:
    flow_id = await publish(runtime, V1)
    other = await publish(runtime, V1, name="Other")
    async with runtime.sessions() as db:
        version = await db.scalar(select(FlowVersion.id).where(FlowVersion.flow_id == other))
        assert version is not None
        try:
            await move_journeys(db, flow_id, version, now=runtime.clock.now())
        except LookupError as exc:
            assert "has no version" in str(exc)
        else:
            raise AssertionError("moved journeys to another flow's version")
