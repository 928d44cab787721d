"""Task routing: a flow's round-robin and fallback owner take the tasks of ownerless contacts."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, Flow, RoutingMember, Task, User
from runtime.engine import Runtime
from runtime.routing import next_member
from tests.runtime.conftest import add_contacts, publish
from tests.runtime.nodes import graph
from tests.runtime.test_builtin_flows import rows
from tests.runtime.test_builtin_flows import rt as rt  # the fixture

LEAD_FLOW = graph(
    [
        ("lead", "trigger.event", {"event_type": "lead.created"}),
        ("call", "action.task", {"title": "Call {{ first_name }}"}),
    ],
    [("lead", "next", "call")],
)


async def _users(sessions: async_sessionmaker[AsyncSession], *names: str) -> list[int]:
    async with sessions() as session, session.begin():
        result = await session.execute(
            insert(User).returning(User.id),
            [{"email": f"{n}@shop.test", "name": n, "password_hash": "x"} for n in names],
        )
        return sorted(result.scalars())


async def _members(
    sessions: async_sessionmaker[AsyncSession], users: list[int], **scope: int
) -> None:
    async with sessions() as session, session.begin():
        await session.execute(insert(RoutingMember), [{"user_id": user, **scope} for user in users])


async def _leads(rt: Runtime, contacts: list[int]) -> None:
    for contact_id in contacts:
        await rt.ingest("lead.created", contact_id=contact_id)
    await rt.drain()


async def test_ownerless_contacts_take_turns_among_the_flows_round_robin(rt: Runtime) -> None:
    anna, bo, fallback = await _users(rt.sessions, "anna", "bo", "fallback")
    flow_id = await publish(rt, LEAD_FLOW, "Leads")
    async with rt.sessions() as session, session.begin():
        await session.execute(update(Flow).where(Flow.id == flow_id).values(owner_id=fallback))
    await _members(rt.sessions, [anna, bo], flow_id=flow_id)
    ownerless = await add_contacts(rt, 4, owner=False)
    owned = (await add_contacts(rt, 1))[0]
    await _leads(rt, [*ownerless, owned])

    tasks = {t.contact_id: t.owner_id for t in await rows(rt, Task)}
    assert Counter(tasks[c] for c in ownerless) == {anna: 2, bo: 2}
    # A contact with an owner keeps going to that owner, and uses nobody's turn.
    owner = (await rows(rt, Contact, Contact.id == owned))[0].owner_id
    assert tasks[owned] == owner not in (anna, bo)
    # The contacts keep whom they were given, so their next tasks reach the same person.
    contacts = {c.id: c.owner_id for c in await rows(rt, Contact)}
    assert all(contacts[c] == tasks[c] for c in ownerless)


async def test_without_a_round_robin_the_flows_owner_takes_the_tasks(rt: Runtime) -> None:
    (fallback,) = await _users(rt.sessions, "fallback")
    flow_id = await publish(rt, LEAD_FLOW, "Leads")
    async with rt.sessions() as session, session.begin():
        await session.execute(update(Flow).where(Flow.id == flow_id).values(owner_id=fallback))
    await _leads(rt, await add_contacts(rt, 2, owner=False))
    assert [t.owner_id for t in await rows(rt, Task)] == [fallback, fallback]


async def test_without_routing_the_task_stays_unassigned(rt: Runtime) -> None:
    await publish(rt, LEAD_FLOW, "Leads")
    await _leads(rt, await add_contacts(rt, 1, owner=False))
    assert [t.owner_id for t in await rows(rt, Task)] == [None]


async def test_an_inactive_member_is_passed_over(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    anna, bo = await _users(sessions, "anna", "bo")
    async with sessions() as session, session.begin():
        flow = Flow(name="Leads")
        session.add(flow)
        await session.flush()
        flow_id = flow.id
        await session.execute(update(User).where(User.id == bo).values(is_active=False))
    await _members(sessions, [anna, bo], flow_id=flow_id)
    async with sessions() as session, session.begin():
        given = [await next_member(session, flow_id=flow_id) for _ in range(3)]
    assert given == [anna, anna, anna]


async def test_concurrent_assignments_skip_nobody_and_double_nobody(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Twelve workers take a turn at once among three members: four each, exactly."""
    users = await _users(sessions, "anna", "bo", "cecilia")
    async with sessions() as session, session.begin():
        flow = Flow(name="Leads")
        session.add(flow)
        await session.flush()
        flow_id = flow.id
    await _members(sessions, users, flow_id=flow_id)

    async def take_turn() -> int | None:
        async with sessions() as session, session.begin():
            return await next_member(session, flow_id=flow_id)

    given = await asyncio.gather(*(take_turn() for _ in range(12)))
    assert Counter(given) == {user: 4 for user in users}
    async with sessions() as session:
        counts = (await session.scalars(select(RoutingMember.assigned))).all()
    assert sorted(counts) == [4, 4, 4]
