"""The run history an auditor reads: what each node read, and every attempt's error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nodes.sdk import EventRecord, Profile
from nodes.sdk.seen import MAX_EVENTS, MAX_FIELDS, MAX_TEXT, Reads
from runtime.clock import FakeClock
from runtime.engine import Runtime
from runtime.walk import retry_delay
from tests.runtime.conftest import add_contacts, journeys, publish, steps, update_contact
from tests.runtime.nodes import graph

TRIGGER = ("t", "test.trigger", {"event_type": "signed.up"})


async def test_a_retried_step_keeps_each_attempts_error_and_what_it_read(
    runtime: Runtime, clock: FakeClock
) -> None:
    [contact] = await add_contacts(runtime, 1, explode=True, city="Malmö")
    await publish(
        runtime,
        graph(
            [TRIGGER, ("x", "test.explode", {}), ("m", "test.email", {"subject": "Hej"})],
            [("t", "next", "x"), ("x", "next", "m")],
        ),
    )
    await runtime.ingest("signed.up", contact_id=contact)
    await runtime.drain()
    clock.advance(retry_delay(1))
    await runtime.drain()  # the second attempt fails too
    await update_contact(runtime, contact, attributes={"explode": False, "city": "Malmö"})
    clock.advance(retry_delay(2))
    await runtime.drain()

    [journey] = await journeys(runtime)
    assert journey.status == "completed"
    [step] = [s for s in await steps(runtime, journey.id) if s.node_id == "x"]
    assert (step.status, step.attempts, step.error) == ("done", 3, None)
    errors = step.output["errors"]
    assert [(e["attempt"], e["error"]) for e in errors] == [
        (1, "RuntimeError: boom"),
        (2, "RuntimeError: boom"),
    ]
    assert datetime.fromisoformat(errors[1]["at"]) > datetime.fromisoformat(errors[0]["at"])
    # The node reads one attribute; the successful attempt saw it false.
    assert step.output["seen"] == {"profile": {"attributes.explode": False}}


async def test_a_failed_step_row_lists_the_error_of_every_attempt(
    runtime: Runtime, clock: FakeClock
) -> None:
    [contact] = await add_contacts(runtime, 1, explode=True)
    await publish(
        runtime,
        graph([TRIGGER, ("x", "test.explode", {})], [("t", "next", "x")]),
    )
    await runtime.ingest("signed.up", contact_id=contact)
    for attempt in range(1, runtime.settings.max_step_attempts + 1):
        await runtime.drain()
        clock.advance(retry_delay(attempt))
    [journey] = await journeys(runtime)
    assert journey.status == "failed"
    [step] = [s for s in await steps(runtime, journey.id) if s.node_id == "x"]
    assert step.status == "error"
    assert [e["attempt"] for e in step.output["errors"]] == [1, 2, 3]
    assert step.output["seen"] == {"profile": {"attributes.explode": True}}


async def test_a_node_reading_history_records_the_events_it_read(
    runtime: Runtime, clock: FakeClock
) -> None:
    [contact] = await add_contacts(runtime, 1)
    for _ in range(3):
        await runtime.ingest("page.viewed", contact_id=contact, properties={"url": "/priser"})
        clock.advance(minutes=1)
    await publish(
        runtime,
        graph(
            [TRIGGER, ("saw", "test.saw_event", {"event_type": "page.viewed"})],
            [("t", "next", "saw")],
        ),
    )
    await runtime.ingest("signed.up", contact_id=contact)
    await runtime.drain()
    [journey] = await journeys(runtime)
    [step] = [s for s in await steps(runtime, journey.id) if s.node_id == "saw"]
    assert step.port == "yes"
    seen = step.output["seen"]
    # ``any`` stops at the first match: the node read the oldest event only.
    assert [e["type"] for e in seen["events"]] == ["page.viewed"]
    assert seen["events_read"] == 1
    assert isinstance(seen["events"][0]["id"], int)
    assert "profile" not in seen  # the profile was never looked at


def test_what_a_node_reads_is_kept_small() -> None:
    reads = Reads()
    attributes = {f"a{i}": "x" * (MAX_TEXT + 50) for i in range(MAX_FIELDS + 20)}
    at = datetime(2026, 1, 1, tzinfo=UTC)
    events = tuple(
        EventRecord("page.viewed", at + timedelta(minutes=i), id=i) for i in range(MAX_EVENTS + 15)
    )
    profile, watched = reads.watch(
        Profile(kind="contact", id="7", email="åsa@example.se", attributes=attributes), events
    )
    assert profile.email == "åsa@example.se"
    assert dict(profile.attributes) == attributes  # the node sees everything
    assert list(watched) == list(events)
    kept = reads.as_json()
    assert len(kept["profile"]) == MAX_FIELDS
    assert kept["profile"]["email"] == "åsa@example.se"
    assert kept["profile"]["attributes.a0"] == "x" * MAX_TEXT + "…"
    assert [e["id"] for e in kept["events"]] == list(range(15, MAX_EVENTS + 15))
    assert kept["events_read"] == MAX_EVENTS + 15
    assert watched[-1] is events[-1] and watched[:2] == events[:2]
