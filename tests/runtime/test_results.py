"""The results rollup: folded from steps, messages and engagement events, exactly once."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from backend.models import Event, OutboxMessage, Step
from runtime import results
from runtime.clock import FakeClock
from runtime.engine import Runtime
from runtime.models import FlowResult, ResultsMark
from tests.runtime.conftest import add_contacts, publish
from tests.runtime.nodes import graph

FLOW = graph(
    [
        ("t", "test.trigger", {"event_type": "signed.up"}),
        ("c", "test.condition", {"attribute": "vip"}),
        ("mail", "test.email", {"subject": "Välkommen"}),
        ("x", "test.explode", {}),
        ("w", "test.wait", {"hours": 48}),
    ],
    [("t", "next", "c"), ("c", "yes", "mail"), ("c", "no", "x"), ("x", "next", "w")],
)


async def rollup(rt: Runtime) -> Counter[tuple[str, str, str]]:
    """Every counter summed over days: (node, metric, port) -> count."""
    async with rt.sessions() as session:
        rows = await session.execute(
            select(FlowResult.node_id, FlowResult.metric, FlowResult.port, FlowResult.count)
        )
        totals: Counter[tuple[str, str, str]] = Counter()
        for node, metric, port, count in rows:
            totals[(node, metric, port)] += count
    return +totals


async def drain_with_retries(rt: Runtime, clock: FakeClock) -> None:
    """Drain, moving the clock past each retry back-off (the explode node fails three times)."""
    for _ in range(4):
        await rt.drain()
        clock.advance(timedelta(minutes=5))


async def run_customers(rt: Runtime, clock: FakeClock) -> dict[str, list[int]]:
    await publish(rt, FLOW)
    vips = await add_contacts(rt, 3, vip=True)
    broken = await add_contacts(rt, 2, explode=True)
    waiting = await add_contacts(rt, 2)
    for contact in vips + broken + waiting:
        await rt.ingest("signed.up", contact_id=contact)
    await drain_with_retries(rt, clock)
    return {"vips": vips, "broken": broken, "waiting": waiting}


BEFORE_THE_WAIT_ENDS = {
    ("t", "reached", ""): 7,
    ("t", "left", "next"): 7,
    ("c", "reached", ""): 7,
    ("c", "left", "yes"): 3,
    ("c", "left", "no"): 4,
    ("mail", "reached", ""): 3,
    ("mail", "left", "next"): 3,
    ("mail", "sent", ""): 3,
    ("mail", "delivered", ""): 3,
    ("x", "reached", ""): 4,
    ("x", "left", "next"): 2,
    ("x", "failed", ""): 2,
    ("w", "reached", ""): 2,
}


async def test_fold_counts_steps_waits_failures_and_messages_once(
    runtime: Runtime, clock: FakeClock
) -> None:
    await run_customers(runtime, clock)
    await runtime.fold_results()
    assert await rollup(runtime) == BEFORE_THE_WAIT_ENDS
    # Folding again finds nothing new and counts nothing twice.
    assert (await runtime.fold_results()).total == 0
    assert await rollup(runtime) == BEFORE_THE_WAIT_ENDS

    # The wait ends: the step row counted as "reached" is now counted for the way it left.
    clock.advance(timedelta(hours=49))
    await runtime.drain()
    await runtime.fold_results()
    await runtime.fold_results()
    assert await rollup(runtime) == {**BEFORE_THE_WAIT_ENDS, ("w", "left", "next"): 2}


async def test_engagement_events_count_per_message(runtime: Runtime, clock: FakeClock) -> None:
    people = await run_customers(runtime, clock)
    async with runtime.sessions() as session:
        messages = (
            await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))
        ).scalars()
        by_contact = {m.contact_id: m.id for m in messages}
    first, second, third = (by_contact[c] for c in people["vips"])
    for message, kind, url in (
        (first, "email.opened", ""),
        (second, "email.opened", ""),
        (first, "email.clicked", "https://a.test/"),
        (first, "email.clicked", "https://b.test/"),  # a second link: still one clicker
        (second, "email.clicked", "https://a.test/"),
    ):
        await runtime.ingest(
            kind,
            contact_id=people["vips"][[first, second, third].index(message)],
            properties={"message_id": message, "url": url},
        )
    # A bounce report names only the address: it belongs to the last email sent there.
    await runtime.ingest("email.bounced", contact_id=people["vips"][2], properties={"type": "hard"})
    await runtime.ingest(
        "email.unsubscribed", contact_id=people["vips"][1], properties={"message_id": str(second)}
    )
    await runtime.fold_results()
    await runtime.fold_results()
    counts = await rollup(runtime)
    assert {key: counts[key] for key in counts if key[0] == "mail"} == {
        ("mail", "reached", ""): 3,
        ("mail", "left", "next"): 3,
        ("mail", "sent", ""): 3,
        ("mail", "delivered", ""): 2,
        ("mail", "opened", ""): 2,
        ("mail", "clicked", ""): 2,
        ("mail", "bounced", ""): 1,
        ("mail", "unsubscribed", ""): 1,
    }


async def test_a_fold_that_dies_before_marking_counts_nothing(
    runtime: Runtime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await run_customers(runtime, clock)
    clock.advance(timedelta(hours=49))
    await runtime.drain()  # the waits end: steps to count again, and new ones
    before = await rollup(runtime)
    real_add = results._add

    async def add_then_die(session: Any, counts: Any) -> None:
        await real_add(session, counts)
        raise RuntimeError("worker killed between adding the counts and marking the rows")

    monkeypatch.setattr(results, "_add", add_then_die)
    with pytest.raises(RuntimeError):
        await runtime.fold_results()
    assert await rollup(runtime) == before
    monkeypatch.setattr(results, "_add", real_add)
    await runtime.fold_results()
    assert await rollup(runtime) == {**BEFORE_THE_WAIT_ENDS, ("w", "left", "next"): 2}


async def test_pruning_steps_and_messages_keeps_the_counts(
    runtime: Runtime, clock: FakeClock
) -> None:
    await run_customers(runtime, clock)
    await runtime.fold_results()
    async with runtime.sessions() as session, session.begin():
        await session.execute(delete(Step))
        await session.execute(delete(OutboxMessage))
    await runtime.fold_results()
    assert await rollup(runtime) == BEFORE_THE_WAIT_ENDS


async def test_retention_prunes_steps_only_once_the_fold_has_counted_them(
    runtime: Runtime, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_fold() -> results.FoldReport:
        return results.FoldReport()

    monkeypatch.setattr(runtime, "fold_results", no_fold)  # a fold that has fallen behind
    await run_customers(runtime, clock)
    monkeypatch.undo()
    clock.advance(days=400)  # far past every retention age
    assert (await runtime.prune()).steps == 0  # nothing is counted yet: nothing goes
    await runtime.fold_results()
    # Now the three finished journeys' steps (trigger, condition, email) go; live and
    # failed journeys keep theirs, and the rollup keeps every count.
    assert (await runtime.prune()).steps == 9
    assert await rollup(runtime) == BEFORE_THE_WAIT_ENDS


async def test_an_event_committed_late_below_a_counted_one_is_still_counted(
    runtime: Runtime, clock: FakeClock
) -> None:
    """Ids are taken at insert, not at commit: a slow request's event can land below one
    already counted. The floor trails by ``EVENTS_SETTLE``, so the fold still finds it."""
    people = await run_customers(runtime, clock)
    async with runtime.sessions() as session:
        first, second = (
            await session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id))
        ).all()[:2]
        newest = await session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) or 0

    async def opened(event_id: int, message: int, contact: int) -> None:
        async with runtime.sessions() as session, session.begin():
            session.add(
                Event(
                    id=event_id,
                    type="email.opened",
                    contact_id=contact,
                    properties={"message_id": message},
                    occurred_at=clock.now(),
                    received_at=clock.now(),
                )
            )

    await opened(newest + 10, second, people["vips"][1])
    await runtime.fold_results()
    clock.advance(results.EVENTS_SETTLE / 2)
    await opened(newest + 5, first, people["vips"][0])
    await runtime.fold_results()
    assert (await rollup(runtime))[("mail", "opened", "")] == 2
    # Once settled the floor moves up and the marks below it go; nothing is counted again.
    for _ in range(2):  # one settle to take the newest id as candidate, one to make it the floor
        clock.advance(results.EVENTS_SETTLE * 2)
        await runtime.fold_results()
    assert (await rollup(runtime))[("mail", "opened", "")] == 2
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ResultsMark)) == 0


def test_the_fold_asks_for_exactly_the_rows_its_partial_indexes_hold() -> None:
    """The fold spells the indexes' predicates out literally (for PostgreSQL's planner):
    a type added to ENGAGEMENT or a predicate changed on one side only would slip past."""
    indexes = {
        index.name: str(index.dialect_options["postgresql"]["where"])
        for table in (Event.__table__, Step.__table__, OutboxMessage.__table__)
        for index in table.indexes  # type: ignore[attr-defined]
    }
    engagement = indexes["ix_events_engagement"]
    assert sorted(engagement.split("'")[1::2]) == sorted(results.ENGAGEMENT)

    def spelled(clause: Any, table: str) -> str:
        text = str(clause).replace(f"{table}.", "")
        assert text.startswith("(") and text.endswith(")"), "a bare OR would bind to the cursor"
        return text[1:-1]

    assert spelled(results._ENGAGEMENT_EVENTS, "events") == engagement
    assert spelled(results._STEPS_TO_COUNT, "steps") == indexes["ix_steps_uncounted"]
    assert (
        spelled(results._MESSAGES_TO_COUNT, "outbox_messages")
        == indexes["ix_outbox_messages_uncounted"]
    )
