"""Failures: node errors retried with back-off then failed, admin retry/cancel, outbox retries."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from backend.models import OutboxMessage
from runtime.admin import AdminError
from runtime.clock import FakeClock
from runtime.engine import Runtime
from runtime.outbox import delivery_delay
from runtime.walk import retry_delay
from tests.runtime.conftest import (
    Mailbox,
    Receiver,
    add_contacts,
    journeys,
    publish,
    steps,
    update_contact,
)
from tests.runtime.nodes import graph

TRIGGER = ("t", "test.trigger", {"event_type": "signed.up"})
FRAGILE = graph(
    [TRIGGER, ("x", "test.explode", {}), ("m", "test.email", {"subject": "Made it"})],
    [("t", "next", "x"), ("x", "next", "m")],
)


async def _start(rt: Runtime, explode: bool = True, count: int = 1) -> list[int]:
    ids = await add_contacts(rt, count, explode=explode)
    await publish(rt, FRAGILE)
    for contact in ids:
        await rt.ingest("signed.up", contact_id=contact)
    return ids


async def test_a_failing_node_is_retried_with_back_off_then_fails_keeping_the_error(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    assert runtime.settings.max_step_attempts == 3
    await _start(runtime)
    first_try = clock.now()
    await runtime.drain()
    [journey] = await journeys(runtime)
    assert (journey.status, journey.attempts, journey.last_error) == (
        "active",
        1,
        "RuntimeError: boom",
    )
    assert journey.due_at == first_try + retry_delay(1) == first_try + timedelta(seconds=10)

    clock.advance(retry_delay(1) - timedelta(seconds=1))
    assert (await runtime.drain()).claimed == 0  # not before its back-off
    clock.advance(seconds=1)
    await runtime.drain()
    [journey] = await journeys(runtime)
    assert journey.attempts == 2 and journey.due_at == clock.now() + retry_delay(2)
    clock.advance(retry_delay(2))
    await runtime.drain()

    [journey] = await journeys(runtime)
    assert (journey.status, journey.exit_reason, journey.last_error) == (
        "failed",
        "node kept failing",
        "RuntimeError: boom",
    )
    assert (journey.due_at, journey.entry_key) == (None, None)
    x = next(s for s in await steps(runtime) if s.node_id == "x")
    assert (x.status, x.error, x.attempts, x.visit) == ("error", "RuntimeError: boom", 3, 1)
    clock.advance(days=30)
    assert (await runtime.drain()).claimed == 0
    assert mailbox.messages == []


async def test_a_node_that_recovers_on_retry_continues_once(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    [contact] = await _start(runtime)
    await runtime.drain()
    await update_contact(runtime, contact, attributes={"explode": False})
    clock.advance(retry_delay(1))
    await runtime.drain()
    [journey] = await journeys(runtime)
    assert (journey.status, journey.attempts, journey.last_error) == ("completed", 0, None)
    history = await steps(runtime)
    assert [(s.node_id, s.status, s.error, s.attempts) for s in history] == [
        ("t", "done", None, 1),
        ("x", "done", None, 2),
        ("m", "done", None, 1),
    ]
    assert mailbox.subjects() == ["Made it"]


async def test_an_admin_retries_a_failed_journey_after_fixing_the_cause(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    [contact] = await _start(runtime)
    for _ in range(3):
        await runtime.drain()
        clock.advance(hours=1)
    [journey] = await journeys(runtime)
    assert journey.status == "failed"
    await update_contact(runtime, contact, attributes={"explode": False})
    await runtime.retry_journey(journey.id)
    [journey] = await journeys(runtime)
    assert (journey.status, journey.attempts, journey.due_at) == ("active", 0, clock.now())
    await runtime.drain()
    [journey] = await journeys(runtime)
    assert (journey.status, journey.last_error) == ("completed", None)
    assert mailbox.subjects() == ["Made it"]
    with pytest.raises(AdminError, match="Only a failed journey"):
        await runtime.retry_journey(journey.id)


async def test_retry_is_refused_when_the_customer_is_back_in_the_flow(
    runtime: Runtime, clock: FakeClock
) -> None:
    [contact] = await _start(runtime)
    for _ in range(3):
        await runtime.drain()
        clock.advance(hours=1)
    [failed] = await journeys(runtime)
    again = await runtime.ingest("signed.up", contact_id=contact)
    [second] = again.enrolled
    with pytest.raises(AdminError, match=f"journey {second}"):
        await runtime.retry_journey(failed.id)
    await runtime.cancel_journey(second)
    await runtime.retry_journey(failed.id)
    assert [j.status for j in await journeys(runtime)] == ["active", "cancelled"]


async def test_an_admin_cancels_waiting_and_failed_journeys(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    waiter, breaker = await add_contacts(runtime, 2)
    await update_contact(runtime, breaker, attributes={"explode": True})
    await publish(
        runtime,
        graph(
            [
                TRIGGER,
                ("x", "test.explode", {}),
                ("w", "test.wait", {"hours": 5}),
                ("m", "test.email", {"subject": "Later"}),
            ],
            [("t", "next", "x"), ("x", "next", "w"), ("w", "next", "m")],
        ),
    )
    for contact in (waiter, breaker):
        await runtime.ingest("signed.up", contact_id=contact)
    for _ in range(3):
        await runtime.drain()
        clock.advance(minutes=30)
    by_contact = {j.contact_id: j for j in await journeys(runtime)}
    assert (by_contact[waiter].status, by_contact[breaker].status) == ("waiting", "failed")
    for journey in by_contact.values():
        await runtime.cancel_journey(journey.id)
    clock.advance(hours=6)
    assert (await runtime.drain()).claimed == 0
    ended = await journeys(runtime)
    assert {(j.status, j.exit_reason, j.due_at) for j in ended} == {
        ("cancelled", "cancelled by an admin", None)
    }
    wait_step = next(s for s in await steps(runtime) if s.node_id == "w")
    assert (wait_step.status, wait_step.output) == ("ended", {"interrupted": "cancelled"})
    assert mailbox.messages == []
    with pytest.raises(AdminError, match="already ended"):
        await runtime.cancel_journey(ended[0].id)
    with pytest.raises(AdminError, match="does not exist"):
        await runtime.cancel_journey(9999)


async def test_a_woken_wait_that_fails_keeps_its_wake_up_for_the_retry(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    [contact] = await add_contacts(runtime, 1)
    wait = {"event_type": "app.opened", "timeout_hours": 24}
    await publish(
        runtime,
        graph(
            [TRIGGER, ("w", "test.wait_event", wait), ("m", "test.email", {"subject": "Opened"})],
            [("t", "next", "w"), ("w", "event", "m")],
        ),
    )
    await runtime.ingest("signed.up", contact_id=contact)
    await runtime.drain()
    await update_contact(runtime, contact, attributes={"explode": True})
    opened = await runtime.ingest("app.opened", contact_id=contact)
    assert len(opened.woken) == 1
    await runtime.drain()
    [journey] = await journeys(runtime)
    assert (journey.attempts, journey.wake_event_id, journey.wait_event_type) == (
        1,
        opened.event_id,
        None,
    )
    # The wait is over: a second open does not wake it again.
    assert (await runtime.ingest("app.opened", contact_id=contact)).woken == ()
    await update_contact(runtime, contact, attributes={"explode": False})
    clock.advance(retry_delay(1))
    await runtime.drain()
    w = next(s for s in await steps(runtime) if s.node_id == "w")
    assert (w.status, w.port, w.attempts, w.error) == ("done", "event", 2, None)
    assert w.output["data"] == {"woken_by": opened.event_id}
    assert mailbox.subjects() == ["Opened"]


async def test_a_step_that_cannot_be_stored_does_not_hold_back_the_batch(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    ids = await add_contacts(runtime, 5)
    await update_contact(runtime, ids[2], attributes={"poison": True})
    await publish(
        runtime,
        graph(
            [TRIGGER, ("p", "test.poison", {}), ("m", "test.email", {"subject": "Hello"})],
            [("t", "next", "p"), ("p", "next", "m")],
        ),
    )
    for contact in ids:
        await runtime.ingest("signed.up", contact_id=contact)
    await runtime.drain()
    by_contact = {j.contact_id: j for j in await journeys(runtime)}
    poisoned = by_contact.pop(ids[2])
    assert {j.status for j in by_contact.values()} == {"completed"}
    assert len(mailbox.messages) == 4
    assert (poisoned.status, poisoned.attempts, poisoned.node_id) == ("active", 1, "t")
    assert poisoned.last_error is not None
    assert poisoned.last_error.startswith("could not record the step")
    assert await steps(runtime, poisoned.id) == []  # nothing half-written
    for _ in range(3):
        clock.advance(hours=1)
        await runtime.drain()
    [poisoned] = [j for j in await journeys(runtime) if j.contact_id == ids[2]]
    assert (poisoned.status, poisoned.entry_key) == ("failed", None)


# -- the outbox -----------------------------------------------------------------------------------


def _hook_flow(url: str) -> dict[str, object]:
    return graph([TRIGGER, ("h", "test.webhook", {"url": url})], [("t", "next", "h")])


async def _messages(rt: Runtime) -> list[OutboxMessage]:
    async with rt.sessions() as session:
        return list((await session.execute(select(OutboxMessage))).scalars())


async def test_a_failed_delivery_is_retried_with_back_off_and_the_same_key(
    runtime: Runtime, clock: FakeClock, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]
    [contact] = await add_contacts(runtime, 1)
    await publish(runtime, _hook_flow(receiver.url))
    await runtime.ingest("signed.up", contact_id=contact)
    report = await runtime.drain()
    assert (report.sent, report.retried) == (0, 1)
    [message] = await _messages(runtime)
    assert (message.status, message.attempts) == ("pending", 1)
    assert (message.last_error or "").startswith("RuntimeError: the receiver failed: HTTP 500")
    assert message.next_attempt_at == clock.now() + delivery_delay(1)
    clock.advance(delivery_delay(1) - timedelta(seconds=1))
    assert (await runtime.drain()).retried == 0
    clock.advance(seconds=1)
    assert (await runtime.drain()).retried == 1
    clock.advance(delivery_delay(2))
    assert (await runtime.drain()).sent == 1
    [message] = await _messages(runtime)
    assert (message.status, message.attempts, message.sent_at) == ("sent", 3, clock.now())
    assert receiver.keys() == [message.idempotency_key] * 3
    headers, body = receiver.requests[-1]
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"customer": str(contact), "node": "h"}
    clock.advance(days=1)
    await runtime.drain()
    assert len(receiver.requests) == 3


async def test_deliveries_dead_letter_and_an_admin_sends_them_again(
    runtime: Runtime, clock: FakeClock, receiver: Receiver
) -> None:
    runtime.max_delivery_attempts = 2
    receiver.statuses = [500, 500, 410]
    first, second = await add_contacts(runtime, 2)
    await publish(runtime, _hook_flow(receiver.url))
    await runtime.ingest("signed.up", contact_id=first)
    await runtime.drain()
    clock.advance(hours=1)
    await runtime.drain()
    [message] = await _messages(runtime)
    assert (message.status, message.attempts) == ("dead", 2)
    assert (message.status_reason or "").startswith("the receiver failed: HTTP 500")

    # A refusal (4xx) is permanent: dead at the first attempt.
    await runtime.ingest("signed.up", contact_id=second)
    await runtime.drain()
    refused = next(m for m in await _messages(runtime) if m.contact_id == second)
    assert (refused.status, refused.attempts) == ("dead", 1)
    assert "HTTP 410" in (refused.status_reason or "")
    clock.advance(days=2)
    assert (await runtime.drain()).sent == 0

    await runtime.retry_message(message.id)
    assert (await runtime.drain()).sent == 1
    with pytest.raises(AdminError, match="dead-letter"):
        await runtime.retry_message(message.id)
    states = {m.contact_id: (m.status, m.attempts) for m in await _messages(runtime)}
    assert states == {first: ("sent", 1), second: ("dead", 1)}
    assert len(receiver.requests) == 4
