"""Waits: for a duration, until a moment, for a window in the customer's time zone, for an event."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.clock import FakeClock
from runtime.engine import Runtime
from runtime.events import EventIn, ingest_many
from runtime.executor.local import LocalExecutor
from tests.runtime.conftest import Mailbox, add_contacts, journeys, publish, steps, update_contact
from tests.runtime.nodes import graph


async def _sign_up_all(rt: Runtime, contacts: list[int]) -> None:
    """Every sign-up in one transaction: a setup here (test_ingest_batch.py checks that a
    batch stores and enrolls exactly as the same events one by one do)."""
    items = [EventIn(type="signed.up", contact_id=contact) for contact in contacts]
    async with rt.sessions() as session, session.begin():
        results = await ingest_many(session, rt.versions, items, now=rt.clock.now())
    assert all(len(result.enrolled) == 1 for result in results)


TRIGGER = ("t", "test.trigger", {"event_type": "signed.up"})


def _then_mail(
    wait: tuple[str, str, dict[str, Any]], port: str = "next", **extra_edges: str
) -> dict[str, Any]:
    """Trigger -> ``wait`` -> (``port``) an email "m"; ``extra_edges`` connect more ports."""
    edges = [("t", "next", wait[0]), (wait[0], port, "m")]
    edges += [(wait[0], port, target) for port, target in extra_edges.items()]
    nodes = [TRIGGER, wait, ("m", "test.email", {"subject": "After the wait"})]
    return graph(nodes, edges)


async def test_a_duration_wait_ends_exactly_on_time(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    [contact] = await add_contacts(runtime, 1)
    await publish(runtime, _then_mail(("w", "test.wait", {"hours": 48})))
    entered = clock.now()
    await runtime.ingest("signed.up", contact_id=contact)
    await runtime.drain()
    [journey] = await journeys(runtime)
    assert (journey.status, journey.node_id, journey.due_at) == (
        "waiting",
        "w",
        entered + timedelta(hours=48),
    )
    clock.advance(hours=48, seconds=-1)
    assert (await runtime.drain()).claimed == 0
    clock.advance(seconds=1)
    await runtime.drain()
    history = await steps(runtime)
    assert [(s.node_id, s.status) for s in history] == [
        ("t", "done"),
        ("w", "done"),
        ("m", "done"),
    ]
    assert history[1].finished_at == history[2].started_at == entered + timedelta(hours=48)
    assert mailbox.subjects() == ["After the wait"]


async def test_waiting_until_a_moment_and_past_moments(runtime: Runtime, clock: FakeClock) -> None:
    [contact] = await add_contacts(runtime, 1)
    launch = datetime(2030, 2, 1, 8, 30, tzinfo=UTC)
    await publish(runtime, _then_mail(("w", "test.wait_until", {"at": launch.isoformat()})))
    await runtime.ingest("signed.up", contact_id=contact)
    await runtime.drain()
    [journey] = await journeys(runtime)
    assert (journey.status, journey.due_at) == ("waiting", launch)
    clock.set(launch - timedelta(minutes=1))
    assert (await runtime.drain()).claimed == 0
    clock.set(launch)
    await runtime.drain()
    assert [j.status for j in await journeys(runtime)] == ["completed"]

    # Entering after the moment has passed: the wait lets the customer straight through.
    [late] = await add_contacts(runtime, 1)
    await runtime.ingest("signed.up", contact_id=late)
    await runtime.drain()
    late_steps = [s for s in await steps(runtime) if s.journey_id != journey.id]
    assert [(s.node_id, s.status) for s in late_steps] == [
        ("t", "done"),
        ("w", "done"),
        ("m", "done"),
    ]


async def test_a_weekday_window_opens_in_each_customers_zone_across_dst(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    """Saturday 30 March 2030: Europe switches to summer time that night, New York already did.

    The Monday 09:00 opening is 07:00 UTC in Berlin (CEST, not the CET offset
    of the moment the journey parked), 13:00 UTC in New York, 09:00 UTC for a
    contact without a zone.
    """
    berlin, new_york, nowhere = await add_contacts(runtime, 3)
    await update_contact(runtime, berlin, timezone="Europe/Berlin")
    await update_contact(runtime, new_york, timezone="America/New_York")
    window = {"weekdays": [0, 1, 2, 3, 4], "start_hour": 9, "end_hour": 17}
    await publish(runtime, _then_mail(("w", "test.wait_window", window)))
    clock.set(datetime(2030, 3, 30, 12, 0, tzinfo=UTC))
    for contact in (berlin, new_york, nowhere):
        await runtime.ingest("signed.up", contact_id=contact)
    await runtime.drain()
    due = {j.contact_id: j.due_at for j in await journeys(runtime)}
    monday = datetime(2030, 4, 1, tzinfo=UTC)
    assert due == {
        berlin: monday.replace(hour=7),
        new_york: monday.replace(hour=13),
        nowhere: monday.replace(hour=9),
    }

    sent_at: dict[str, datetime] = {}
    for hour in (6, 7, 8, 9, 12, 13):
        clock.set(monday.replace(hour=hour, minute=59 if hour in (6, 8, 12) else 0))
        await runtime.drain()
        for to in [str(m["To"]) for m in mailbox.messages]:
            sent_at.setdefault(to, clock.now())
    assert sent_at == {
        f"c{berlin}@example.test": monday.replace(hour=7),
        f"c{nowhere}@example.test": monday.replace(hour=9),
        f"c{new_york}@example.test": monday.replace(hour=13),
    }
    local = {}
    for journey in await journeys(runtime):
        wait_step = (await steps(runtime, journey.id))[1]
        assert wait_step.output["woke"]["reason"] == "timer"
        local[journey.contact_id] = wait_step.output["data"]["sent_local"]
    assert local == {
        berlin: "2030-04-01T09:00:00+02:00",
        new_york: "2030-04-01T09:00:00-04:00",
        nowhere: "2030-04-01T09:00:00+00:00",
    }


async def test_an_event_with_a_filter_ends_the_wait_and_others_do_not(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    first, second, third = await add_contacts(runtime, 3)
    wait = ("w", "test.wait_event", {"event_type": "form.submitted", "match": {"form": "demo"}})
    flow = _then_mail(wait, "timeout", event="booked")
    flow["nodes"][2]["config"]["subject"] = "No demo booked"
    flow["nodes"].append({"id": "booked", "type": "test.email", "config": {"subject": "See you"}})
    await publish(runtime, flow)
    for contact in (first, second, third):
        await runtime.ingest("signed.up", contact_id=contact)
    await runtime.drain()

    clock.advance(hours=1)
    wrong_form = await runtime.ingest(
        "form.submitted", contact_id=first, properties={"form": "newsletter"}
    )
    assert wrong_form.woken == ()
    wrong_type = await runtime.ingest("page.viewed", contact_id=first, properties={"form": "demo"})
    assert wrong_type.woken == ()
    right = await runtime.ingest(
        "form.submitted", contact_id=first, properties={"form": "demo", "size": 10}
    )
    [woken] = right.woken
    journey = {j.id: j for j in await journeys(runtime)}[woken]
    assert (journey.contact_id, journey.due_at, journey.wake_event_id) == (
        first,
        clock.now(),
        right.event_id,
    )
    assert journey.wait_event_type is None  # a second matching event cannot wake it again
    again = await runtime.ingest("form.submitted", contact_id=first, properties={"form": "demo"})
    assert again.woken == ()
    await runtime.drain()
    clock.advance(hours=47)
    await runtime.drain()
    assert sorted(str(m["To"]) + " " + str(m["Subject"]) for m in mailbox.messages) == [
        f"c{first}@example.test See you",
        f"c{second}@example.test No demo booked",
        f"c{third}@example.test No demo booked",
    ]
    wait_steps = {s.journey_id: s for s in await steps(runtime) if s.node_id == "w"}
    assert wait_steps[woken].port == "event"
    assert wait_steps[woken].output["woke"] == {"reason": "event", "event_id": right.event_id}
    assert wait_steps[woken].output["data"] == {"woken_by": right.event_id}
    assert {s.port for j, s in wait_steps.items() if j != woken} == {"timeout"}
    # After the timeout branch ran, a late event changes nothing.
    late = await runtime.ingest("form.submitted", contact_id=second, properties={"form": "demo"})
    assert late.woken == ()


async def test_waiting_for_the_open_of_the_message_a_node_sent(
    runtime: Runtime, clock: FakeClock
) -> None:
    a, b = await add_contacts(runtime, 2)
    wait = {"event_type": "email.opened", "for_node": "m", "timeout_hours": 24}
    await publish(
        runtime,
        graph(
            [TRIGGER, ("m", "test.email", {"subject": "Hi"}), ("w", "test.wait_event", wait)],
            [("t", "next", "m"), ("m", "next", "w")],
        ),
    )
    for contact in (a, b):
        await runtime.ingest("signed.up", contact_id=contact)
    await runtime.drain()
    by_contact = {j.contact_id: j.id for j in await journeys(runtime)}
    # The match names the journey and the node: another message's open does not count.
    wrong = {"journey_id": by_contact[b], "node_id": "m"}
    assert (await runtime.ingest("email.opened", contact_id=a, properties=wrong)).woken == ()
    other_node = {"journey_id": by_contact[a], "node_id": "other"}
    assert (await runtime.ingest("email.opened", contact_id=a, properties=other_node)).woken == ()
    right = {"journey_id": by_contact[a], "node_id": "m"}
    assert (await runtime.ingest("email.opened", contact_id=a, properties=right)).woken == (
        by_contact[a],
    )
    await runtime.drain()
    ports = {s.journey_id: s.port for s in await steps(runtime) if s.node_id == "w"}
    assert ports == {by_contact[a]: "event", by_contact[b]: None}


class CountingBell:
    def __init__(self) -> None:
        self.rings = 0

    def ring(self) -> None:
        self.rings += 1


async def test_an_event_makes_the_waiting_journey_due_and_rings_at_once(
    runtime: Runtime, clock: FakeClock
) -> None:
    ids = await add_contacts(runtime, 50)
    wait = ("w", "test.wait_event", {"event_type": "app.opened", "timeout_hours": 240})
    await publish(runtime, _then_mail(wait, "event"))
    await _sign_up_all(runtime, ids)
    await runtime.drain()
    bell = CountingBell()
    runtime.doorbell = bell
    clock.advance(minutes=5)
    result = await runtime.ingest("app.opened", contact_id=ids[17])
    assert bell.rings == 1  # after the commit: the worker will find the row
    assert (await runtime.ingest("app.viewed", contact_id=ids[3])).woken == ()
    assert bell.rings == 1
    # One claim, without any sweep or timer: exactly the woken journey runs.
    stepped = await runtime.step()
    assert (stepped.claimed, stepped.steps) == (1, 2)
    [woken] = [j for j in await journeys(runtime) if j.status == "completed"]
    assert (woken.id,) == result.woken and woken.contact_id == ids[17]


async def test_the_in_process_executor_steps_a_woken_journey_without_a_sweep(
    runtime: Runtime, mailbox: Mailbox
) -> None:
    [contact] = await add_contacts(runtime, 1)
    wait = ("w", "test.wait_event", {"event_type": "app.opened", "timeout_hours": 240})
    await publish(runtime, _then_mail(wait, "event"))
    await runtime.ingest("signed.up", contact_id=contact)
    await runtime.drain()
    async with LocalExecutor(runtime, sweep_interval=3600) as executor:
        await asyncio.sleep(0)  # the executor's first pass finds nothing due
        await runtime.ingest("app.opened", contact_id=contact)
        for _ in range(500):  # bounded: the doorbell, not the hourly sweep, must wake it
            if mailbox.messages:
                break
            await asyncio.sleep(0.01)
        assert executor.running
    assert mailbox.subjects() == ["After the wait"]
    assert [j.status for j in await journeys(runtime)] == ["completed"]


async def test_waking_finds_journeys_through_an_index(
    runtime: Runtime, engine: AsyncEngine
) -> None:
    """The one query an event runs to find its customers' live and waiting journeys uses an
    index on the customer, not a scan of every journey (PostgreSQL)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the plan is PostgreSQL's; SQLite has the same index")
    ids = await add_contacts(runtime, 30)
    wait = ("w", "test.wait_event", {"event_type": "app.opened", "timeout_hours": 240})
    await publish(runtime, _then_mail(wait, "event"))
    await _sign_up_all(runtime, ids)
    await runtime.drain()
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "wait_event_type" in statement:
            seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        result = await runtime.ingest("app.opened", contact_id=ids[4])
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    assert len(result.woken) == 1
    [(statement, parameters)] = seen
    async with engine.connect() as conn:
        # Without sequential scans the planner takes any index that can answer the query;
        # a partial index whose predicate the query does not imply would not qualify.
        await conn.exec_driver_sql("SET enable_seqscan = off")
        rows = await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        plan = "\n".join(row[0] for row in rows)
    # An index scan or a bitmap of index scans, as the planner prefers for the table's size.
    assert re.search(r"Index Scan (using|on) ix_journeys_", plan), plan
    assert "Seq Scan" not in plan, plan
