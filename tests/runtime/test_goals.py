"""Conversions: goal nodes and flow goals (event, attribute, stage) through the real engine.

Every test runs on SQLite and PostgreSQL; time moves with the fake clock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.settings import Settings
from nodes.builtin.goals import ConversionConfig
from runtime.clock import FakeClock
from runtime.engine import Runtime
from runtime.goals import FlowGoal
from runtime.models import Event, Journey, JourneyConversion
from tests.runtime.conftest import add_contacts, publish, update_contact
from tests.runtime.nodes import graph
from tests.runtime.test_builtin_flows import builtin_registry


@pytest.fixture
def rt(sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: FakeClock) -> Runtime:
    return Runtime(sessions=sessions, registry=builtin_registry(), settings=settings, clock=clock)


def signup_flow(**settings: Any) -> dict[str, Any]:
    """signed up -> wait a day -> tag: journeys end after a day, conversions may come later."""
    return graph(
        [
            ("signup", "trigger.event", {"event_type": "signed.up"}),
            ("day", "wait.duration", {"amount": 1, "unit": "days"}),
            ("tag", "action.tag", {"add": ["welcomed"]}),
            ("paid", "goal.conversion", {"label": "Paid", "event_type": "invoice.paid"}),
        ],
        [("signup", "next", "day"), ("day", "next", "tag")],
        **settings,
    )


async def conversions(rt: Runtime) -> dict[int, JourneyConversion]:
    """contact id -> its journey's conversion."""
    async with rt.sessions() as session:
        rows = await session.execute(
            select(Journey.contact_id, JourneyConversion).join(
                Journey, Journey.id == JourneyConversion.journey_id
            )
        )
        return {contact_id: conversion for contact_id, conversion in rows}


async def enter(rt: Runtime, contact_ids: list[int]) -> None:
    for contact_id in contact_ids:
        await rt.ingest("signed.up", contact_id=contact_id)
    await rt.drain()


async def test_a_goal_node_records_its_conversion_once(rt: Runtime, clock: FakeClock) -> None:
    x, y = await add_contacts(rt, 2)
    flow_id = await publish(rt, signup_flow())
    await enter(rt, [x, y])
    clock.advance(hours=3)
    reached_at = clock.now()
    await rt.ingest("invoice.paid", contact_id=x)
    await rt.drain()
    await rt.ingest("invoice.paid", contact_id=x)
    clock.advance(days=2)
    await rt.drain()
    found = await conversions(rt)
    assert set(found) == {x}
    assert (found[x].flow_id, found[x].goal, found[x].label) == (flow_id, "paid", "Paid")
    assert found[x].converted_at == reached_at


async def test_an_event_goal_counts_matching_events_within_its_window(
    rt: Runtime, clock: FakeClock
) -> None:
    early, small, late, on_time, never = await add_contacts(rt, 5)
    goal = {
        "kind": "event",
        "label": "Bought",
        "event_type": "purchase",
        "where": [{"property": "amount", "type": "number", "op": "gt", "value": 100}],
        "within_days": 7,
    }
    flow_id = await publish(rt, signup_flow(goal=goal))
    await rt.ingest("purchase", contact_id=early, properties={"amount": 500})
    clock.advance(minutes=1)
    entered = clock.now()
    await enter(rt, [early, small, late, on_time, never])
    clock.advance(days=3)  # the journeys are over by now: the goal still counts
    await rt.ingest("purchase", contact_id=small, properties={"amount": 50})
    await rt.ingest("purchase", contact_id=on_time, properties={"amount": 150})
    bought_at = clock.now()
    clock.advance(days=1)
    await rt.ingest("purchase", contact_id=on_time, properties={"amount": 900})
    clock.set(entered + timedelta(days=7, minutes=1))
    await rt.ingest("purchase", contact_id=late, properties={"amount": 900})

    assert await rt.record_conversions() == 1
    assert await rt.record_conversions() == 0
    found = await conversions(rt)
    assert set(found) == {on_time}
    assert (found[on_time].flow_id, found[on_time].goal) == (flow_id, "flow")
    assert (found[on_time].label, found[on_time].converted_at) == ("Bought", bought_at)


async def test_a_claimed_goal_event_counts_only_once_verified(
    rt: Runtime, clock: FakeClock
) -> None:
    """A form typed with someone's address is a claim: it converts nobody until verified."""
    (contact,) = await add_contacts(rt, 1)
    goal = {"kind": "event", "label": "Asked", "event_type": "form.submitted", "within_days": 7}
    await publish(rt, signup_flow(goal=goal))
    await enter(rt, [contact])
    clock.advance(hours=1)
    await rt.ingest("form.submitted", contact_id=contact)
    async with rt.sessions() as session, session.begin():
        await session.execute(
            update(Event).where(Event.type == "form.submitted").values(claimed=True)
        )

    assert await rt.record_conversions() == 0
    async with rt.sessions() as session, session.begin():
        await session.execute(update(Event).values(claimed=False))
    clock.advance(minutes=2)
    assert await rt.record_conversions() == 1
    assert set(await conversions(rt)) == {contact}


async def test_a_stage_goal_counts_reaching_that_stage_or_a_later_one_after_entering(
    rt: Runtime, clock: FakeClock
) -> None:
    already, later, lead, unchanged = await add_contacts(rt, 4)
    await update_contact(rt, already, lifecycle_stage="customer", updated_at=clock.now())
    clock.advance(minutes=1)
    await publish(rt, signup_flow(goal={"kind": "stage", "stage": "customer"}))
    await enter(rt, [already, later, lead, unchanged])
    clock.advance(days=2)
    await update_contact(rt, later, lifecycle_stage="evangelist", updated_at=clock.now())
    await update_contact(rt, lead, lifecycle_stage="lead", updated_at=clock.now())
    report = await rt.drain()
    assert report.converted == 1
    found = await conversions(rt)
    assert set(found) == {later}
    assert found[later].converted_at == clock.now()


async def test_an_attribute_goal_follows_changes_the_flow_makes(
    rt: Runtime, clock: FakeClock
) -> None:
    (x,) = await add_contacts(rt, 1, plan="free")
    goal = {
        "kind": "attribute",
        "label": "Upgraded",
        "attribute": {"attribute": "plan", "type": "string", "op": "equals", "value": "pro"},
    }
    flow = graph(
        [
            ("signup", "trigger.event", {"event_type": "signed.up"}),
            ("day", "wait.duration", {"amount": 1, "unit": "days"}),
            ("upgrade", "action.update_contact", {"set_attributes": {"plan": "pro"}}),
        ],
        [("signup", "next", "day"), ("day", "next", "upgrade")],
        goal=goal,
    )
    await publish(rt, flow)
    await enter(rt, [x])
    assert await rt.record_conversions() == 0
    clock.advance(days=1)
    await rt.drain()
    assert await rt.record_conversions() == 1
    assert (await conversions(rt))[x].label == "Upgraded"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"kind": "event"}, "an event goal needs the event's type"),
        ({"kind": "stage"}, "a lifecycle stage goal needs the stage"),
        ({"kind": "stage", "stage": "king"}, "Input should be"),
        ({"kind": "attribute"}, "an attribute goal needs the attribute and its value"),
    ],
)
def test_a_goal_says_what_it_waits_for(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FlowGoal.model_validate(raw)


def stage_goal_flow(**settings: Any) -> dict[str, Any]:
    """signed up -> wait 3 days -> tag; a goal node met when the contact becomes a customer."""
    return graph(
        [
            ("signup", "trigger.event", {"event_type": "signed.up"}),
            ("wait", "wait.duration", {"amount": 3, "unit": "days"}),
            ("tag", "action.tag", {"add": ["nudged"]}),
            ("won", "goal.conversion", {"label": "Customer", "stage": "customer"}),
        ],
        [("signup", "next", "wait"), ("wait", "next", "tag")],
        **settings,
    )


async def test_a_stage_goal_node_takes_the_journey_over_when_the_contact_gets_there(
    rt: Runtime, clock: FakeClock
) -> None:
    became, stayed, already = await add_contacts(rt, 3)
    await update_contact(rt, already, lifecycle_stage="customer", updated_at=clock.now())
    clock.advance(minutes=1)
    await publish(rt, stage_goal_flow())
    await enter(rt, [became, stayed, already])
    clock.advance(days=1)
    await update_contact(rt, became, lifecycle_stage="customer", updated_at=clock.now())
    reached_at = clock.now()
    await rt.drain()
    clock.advance(days=3)
    await rt.drain()
    async with rt.sessions() as session:
        ended = {j.contact_id: j for j in (await session.execute(select(Journey))).scalars()}
    assert (ended[became].status, ended[became].exit_reason) == (
        "completed",
        "goal reached: Customer",
    )
    assert {ended[c].exit_reason for c in (stayed, already)} == {"end of flow"}
    found = await conversions(rt)
    assert set(found) == {became}
    assert (found[became].goal, found[became].converted_at) == ("won", reached_at)


async def test_without_the_goal_exit_a_stage_goal_node_counts_and_the_journey_goes_on(
    rt: Runtime, clock: FakeClock
) -> None:
    (x,) = await add_contacts(rt, 1)
    await publish(rt, stage_goal_flow(exit_on=["unsubscribed"]))
    await enter(rt, [x])
    clock.advance(days=1)
    await update_contact(rt, x, lifecycle_stage="evangelist", updated_at=clock.now())
    assert await rt.record_conversions() == 1
    assert await rt.record_conversions() == 0
    clock.advance(days=3)
    await rt.drain()
    async with rt.sessions() as session:
        journey = (await session.execute(select(Journey))).scalar_one()
    assert (journey.status, journey.exit_reason) == ("completed", "end of flow")
    assert (await conversions(rt))[x].goal == "won"


def test_a_goal_node_needs_both_the_attribute_and_its_value() -> None:
    with pytest.raises(ValidationError, match="both the attribute and the value"):
        ConversionConfig(attribute="plan")
    condition = ConversionConfig(attribute="plan", attribute_value="pro").condition()
    assert condition == {"attribute": "plan", "value": "pro"}
