"""Set-based ingestion: a batch does what the same events one by one would, stage by stage.

The property test posts random events (customers, types, properties, repeated
idempotency keys) against flows with event triggers, waits for events, a
goal and every re-entry policy, once as one batch and once item by item on a
fresh database, and compares what is stored. The named tests pin each rule.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from backend.models import Event, Journey, Step, Visitor
from runtime.clock import FakeClock
from runtime.engine import Runtime
from runtime.events import EventIn, IngestResult, ingest_many
from runtime.versions import VersionCache
from tests.runtime.conftest import add_contacts, journeys, publish
from tests.runtime.nodes import graph
from tests.support.stores import truncate_all

EXAMPLES = int(os.environ.get("INGEST_EXAMPLES", "25"))
PG_EXAMPLES = int(os.environ.get("INGEST_PG_EXAMPLES", "10"))
START = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
TYPES = ("signed.up", "app.opened", "order.placed")
CUSTOMERS = ("c0", "c1", "c2", "v0")


def _waiting_for_open(**settings: Any) -> dict[str, Any]:
    return graph(
        [
            ("t", "test.trigger", {"event_type": "signed.up"}),
            (
                "w",
                "test.wait_event",
                {"event_type": "app.opened", "match": {"plan": "a"}, "timeout_hours": 48},
            ),
            ("m", "test.email", {"subject": "Opened"}),
        ],
        [("t", "next", "w"), ("w", "event", "m"), ("w", "timeout", "m")],
        **settings,
    )


def _goal_once() -> dict[str, Any]:
    return graph(
        [
            ("t", "test.trigger", {"event_type": "signed.up", "where": {"plan": "b"}}),
            ("w", "test.wait", {"hours": 48}),
            ("m", "test.email", {"subject": "Still thinking?"}),
            ("bought", "test.goal", {"event_type": "order.placed"}),
        ],
        [("t", "next", "w"), ("w", "next", "m"), ("m", "next", "bought")],
        reentry="once",
    )


def _on_open_again_after_days() -> dict[str, Any]:
    return graph(
        [
            ("t", "test.trigger", {"event_type": "app.opened"}),
            ("w", "test.wait", {"hours": 1}),
        ],
        [("t", "next", "w")],
        reentry="after_days",
        reentry_days=3,
    )


async def _setup(runtime: Runtime, engine: AsyncEngine, clock: FakeClock) -> dict[str, Any]:
    """Three flows, three contacts and a visitor; c0 and c1 already wait in some flows."""
    await truncate_all(engine)
    clock.set(START)
    runtime.versions = VersionCache(runtime.registry)  # ids restart with the emptied tables
    ids = await add_contacts(runtime, 3)
    async with runtime.sessions() as session, session.begin():
        session.add(Visitor(id="v0", traits={}, first_seen_at=START, last_seen_at=START))
    await publish(runtime, _waiting_for_open(), "Open")
    await publish(runtime, _goal_once(), "Goal")
    await publish(runtime, _on_open_again_after_days(), "Again")
    customers = {"c0": ids[0], "c1": ids[1], "c2": ids[2], "v0": "v0"}
    await runtime.ingest("signed.up", contact_id=ids[0])
    await runtime.ingest("signed.up", contact_id=ids[1], properties={"plan": "b"})
    await runtime.drain()
    clock.advance(hours=1)
    return customers


def _event(customers: dict[str, Any], spec: tuple[str, str, str | None, str | None]) -> EventIn:
    who, type_, plan, key = spec
    ident = customers[who]
    return EventIn(
        type=type_,
        contact_id=ident if who.startswith("c") else None,
        visitor_id=ident if who.startswith("v") else None,
        properties={"plan": plan} if plan else {},
        dedupe_key=key,
    )


Ranks = tuple[dict[int, int], dict[int, int]]


async def _state(runtime: Runtime) -> tuple[dict[str, list[tuple[Any, ...]]], Ranks]:
    async with runtime.sessions() as session:
        return await _state_in(session)


async def _state_in(session: AsyncSession) -> tuple[dict[str, list[tuple[Any, ...]]], Ranks]:
    """Events, journeys and history, with ids replaced by their rank.

    PostgreSQL spends a sequence value on an insert that ``ON CONFLICT DO
    NOTHING`` skips; one by one makes such attempts where a batch decides in
    Python, so the ids may have gaps in one and not the other. Order is what
    must agree.
    """
    events = (
        await session.execute(
            select(
                Event.id,
                Event.type,
                Event.contact_id,
                Event.visitor_id,
                Event.properties,
                Event.dedupe_key,
            ).order_by(Event.id)
        )
    ).all()
    journey_rows = (
        await session.execute(
            select(
                Journey.id,
                Journey.flow_id,
                Journey.contact_id,
                Journey.visitor_id,
                Journey.status,
                Journey.node_id,
                Journey.visits,
                Journey.data,
                Journey.due_at,
                Journey.wait_event_type,
                Journey.wake_event_id,
                Journey.entry_key,
                Journey.entered_at,
            ).order_by(Journey.id)
        )
    ).all()
    step_rows = await session.execute(
        select(Step.journey_id, Step.node_id, Step.visit, Step.status, Step.output).order_by(
            Step.id
        )
    )
    e_rank = {row.id: n for n, row in enumerate(events)}
    j_rank = {row.id: n for n, row in enumerate(journey_rows)}

    def journey(row: Any) -> tuple[Any, ...]:
        data = dict(row.data or {})
        trigger = dict(data.get("trigger") or {})
        if "event_id" in trigger:
            trigger["event_id"] = e_rank[trigger["event_id"]]
            data["trigger"] = trigger
        wake = None if row.wake_event_id is None else e_rank[row.wake_event_id]
        return (
            j_rank[row.id],
            *row[1:7],
            data,
            row.due_at,
            row.wait_event_type,
            wake,
            *row[11:],
        )

    state = {
        "events": [(e_rank[r.id], *r[1:]) for r in events],
        "journeys": [journey(r) for r in journey_rows],
        "steps": [(j_rank[r.journey_id], *r[1:]) for r in step_rows],
    }
    return state, (e_rank, j_rank)


async def _sequences(session: AsyncSession) -> list[tuple[str, int | None]]:
    """PostgreSQL's sequences and their last values (a rollback does not give ids back)."""
    if session.get_bind().dialect.name != "postgresql":
        return []  # SQLite's next id comes from the rows (or sqlite_sequence): rolled back
    rows = await session.execute(
        text(
            "SELECT format('%I.%I', schemaname, sequencename), last_value FROM pg_sequences"
            " WHERE schemaname = current_schema()"
        )
    )
    saved = [(str(name), last) for name, last in rows.all()]
    await session.commit()
    return saved


async def _restore(session: AsyncSession, sequences: list[tuple[str, int | None]]) -> None:
    """Each sequence back where it was, so the one-by-one run gets the ids the batch got."""
    async with session.begin():
        for name, last in sequences:
            if last is None:  # never used: its next value is its start
                await session.execute(text(f"ALTER SEQUENCE {name} RESTART"))
            else:
                await session.execute(select(func.setval(name, last)))


def _summary(results: list[IngestResult], ranks: Ranks) -> list[tuple[Any, ...]]:
    e_rank, j_rank = ranks

    def js(ids: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(j_rank[i] for i in ids)

    return [
        (e_rank[r.event_id], r.duplicate, js(r.enrolled), js(r.woken), js(r.goals)) for r in results
    ]


async def _batch_equals_one_by_one(
    runtime: Runtime,
    engine: AsyncEngine,
    clock: FakeClock,
    specs: list[tuple[str, str, str | None, str | None]],
) -> None:
    customers = await _setup(runtime, engine, clock)
    items = [_event(customers, s) for s in specs]
    # The batch is one transaction: what it stored is read before its end, then rolled
    # back, so the one-by-one run starts from the same rows without a second setup.
    # (No constraint is deferred to the commit, so nothing is left unchecked.)
    async with runtime.sessions() as session:
        sequences = await _sequences(session)
        await session.begin()
        together = await ingest_many(session, runtime.versions, items, now=clock.now())
        await session.flush()
        batch_state, batch_ranks = await _state_in(session)
        await session.rollback()
        await _restore(session, sequences)

    apart: list[IngestResult] = []
    for item in items:
        async with runtime.sessions() as session, session.begin():
            apart += await ingest_many(session, runtime.versions, [item], now=clock.now())
    state, ranks = await _state(runtime)
    assert _summary(together, batch_ranks) == _summary(apart, ranks)
    assert batch_state == state


_SPECS = st.lists(
    st.tuples(
        st.sampled_from(CUSTOMERS),
        st.sampled_from(TYPES),
        st.sampled_from([None, "a", "b"]),
        st.sampled_from([None, None, "k1", "k2"]),
    ),
    min_size=1,
    max_size=12,
)
_SETTINGS: Any = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


@settings(max_examples=EXAMPLES, **_SETTINGS)
@given(specs=_SPECS)
async def test_a_batch_stores_what_the_items_one_by_one_store_on_sqlite(
    runtime: Runtime,
    engine: AsyncEngine,
    clock: FakeClock,
    specs: list[tuple[str, str, str | None, str | None]],
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the long run is on SQLite; PostgreSQL has a shorter one")
    await _batch_equals_one_by_one(runtime, engine, clock, specs)


@settings(max_examples=PG_EXAMPLES, **_SETTINGS)
@given(specs=_SPECS)
async def test_a_batch_stores_what_the_items_one_by_one_store_on_postgresql(
    runtime: Runtime,
    engine: AsyncEngine,
    clock: FakeClock,
    specs: list[tuple[str, str, str | None, str | None]],
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("covered by the SQLite run")
    await _batch_equals_one_by_one(runtime, engine, clock, specs)


# -- the rules, one by one ---------------------------------------------------------------------


async def _ingest(runtime: Runtime, items: list[EventIn]) -> list[IngestResult]:
    async with runtime.sessions() as session, session.begin():
        return await ingest_many(session, runtime.versions, items, now=runtime.clock.now())


async def test_a_repeated_key_in_one_batch_is_stored_once(runtime: Runtime) -> None:
    [contact] = await add_contacts(runtime, 1)
    await publish(runtime, _on_open_again_after_days())
    first, again, other = await _ingest(
        runtime,
        [
            EventIn("app.opened", contact_id=contact, dedupe_key="k"),
            EventIn("app.opened", contact_id=contact, dedupe_key="k"),
            EventIn("app.opened", contact_id=contact),
        ],
    )
    assert (first.duplicate, again.duplicate, other.duplicate) == (False, True, False)
    assert again.event_id == first.event_id != other.event_id
    assert len(first.enrolled) == 1 and not again.enrolled and not other.enrolled
    [stored] = await _ingest(runtime, [EventIn("app.opened", contact_id=contact, dedupe_key="k")])
    assert stored.duplicate and stored.event_id == first.event_id
    assert len(await journeys(runtime)) == 1


async def test_the_first_matching_event_of_a_batch_ends_the_wait(
    runtime: Runtime, clock: FakeClock
) -> None:
    ids = await add_contacts(runtime, 2)
    await publish(runtime, _waiting_for_open())
    for contact in ids:
        await runtime.ingest("signed.up", contact_id=contact)
    await runtime.drain()
    results = await _ingest(
        runtime,
        [
            EventIn("app.opened", contact_id=ids[0], properties={"plan": "b"}),  # no match
            EventIn("app.opened", contact_id=ids[0], properties={"plan": "a"}),
            EventIn("app.opened", contact_id=ids[0], properties={"plan": "a"}),
            EventIn("app.opened", contact_id=ids[1], properties={"plan": "a"}),
        ],
    )
    assert [len(r.woken) for r in results] == [0, 1, 0, 1]
    by_contact = {j.contact_id: j for j in await journeys(runtime)}
    assert by_contact[ids[0]].wake_event_id == results[1].event_id
    assert by_contact[ids[1]].wake_event_id == results[3].event_id
    assert all(j.due_at == clock.now() for j in by_contact.values())


async def test_a_goal_sees_the_journey_an_earlier_event_of_the_batch_started(
    runtime: Runtime,
) -> None:
    [contact] = await add_contacts(runtime, 1)
    await publish(runtime, _goal_once())
    early_goal, entered, goal = await _ingest(
        runtime,
        [
            EventIn("order.placed", contact_id=contact),
            EventIn("signed.up", contact_id=contact, properties={"plan": "b"}),
            EventIn("order.placed", contact_id=contact),
        ],
    )
    assert early_goal.goals == () and len(entered.enrolled) == 1
    assert goal.goals == entered.enrolled
    [journey] = await journeys(runtime)
    assert (journey.node_id, journey.wake_event_id) == ("bought", goal.event_id)


async def test_re_entry_rules_hold_inside_a_batch_and_across_batches(
    runtime: Runtime, clock: FakeClock
) -> None:
    ids = await add_contacts(runtime, 2)
    await publish(runtime, _on_open_again_after_days())
    first = await _ingest(runtime, [EventIn("app.opened", contact_id=c) for c in ids * 2])
    assert [len(r.enrolled) for r in first] == [1, 1, 0, 0]
    await runtime.drain()
    clock.advance(hours=2)
    await runtime.drain()  # both journeys end after their hour
    clock.advance(days=2)
    refused = await _ingest(runtime, [EventIn("app.opened", contact_id=ids[0])])
    assert refused[0].enrolled == ()
    clock.advance(days=1, seconds=1)
    again = await _ingest(runtime, [EventIn("app.opened", contact_id=c) for c in ids])
    assert [len(r.enrolled) for r in again] == [1, 1]
    assert len(await journeys(runtime)) == 4


async def test_a_batch_costs_the_same_statements_as_one_event(
    runtime: Runtime, engine: AsyncEngine
) -> None:
    """Each stage is one statement per batch: 200 events cost what one costs."""
    ids = await add_contacts(runtime, 200)
    await publish(runtime, _waiting_for_open())
    await publish(runtime, _goal_once())

    async def statements(items: list[EventIn]) -> int:
        seen: list[str] = []

        def count(*args: Any) -> None:
            seen.append(args[2])

        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            await _ingest(runtime, items)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
        return len(seen)

    await _ingest(runtime, [EventIn("signed.up", contact_id=ids[0])])  # compiles the flows
    one = await statements([EventIn("signed.up", contact_id=ids[1], dedupe_key="x")])
    many = await statements(
        [EventIn("signed.up", contact_id=c, dedupe_key=f"k{c}") for c in ids[2:]]
    )
    assert many == one <= 7
