"""Retention: old steps, events and message bodies go in batches; what live journeys need stays."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import Delivery, Event, FlowVersion, Journey, OutboxMessage, Step
from backend.settings import Settings
from runtime.clock import FakeClock
from runtime.engine import Runtime
from tests.runtime.conftest import add_contacts, publish
from tests.runtime.nodes import canonical_graph

OLD = timedelta(days=400)  # past every default age (steps 180, events 365, bodies 90 days)
RECENT = timedelta(days=10)


@dataclass
class Seeded:
    ended: int  # an ended journey: its old steps go
    live: int  # a waiting journey: all its steps stay
    failed: int  # a failed journey an admin may retry: its steps stay
    old_steps: list[int]
    kept_steps: list[int]
    old_events: list[int]
    wake_event: int  # old, but a live journey was woken by it
    recent_event: int
    sent_old: int
    sent_recent: int
    pending_old: int


async def _seed(rt: Runtime, clock: FakeClock) -> Seeded:
    now = clock.now()
    flow_id = await publish(rt, canonical_graph())
    [contact] = await add_contacts(rt, 1)
    async with rt.sessions() as db, db.begin():
        version_id = await db.scalar(select(FlowVersion.id).where(FlowVersion.flow_id == flow_id))

        async def event(at: datetime) -> int:
            return int(
                await db.scalar(
                    insert(Event)
                    .values(type="page.viewed", contact_id=contact, occurred_at=at, received_at=at)
                    .returning(Event.id)
                )
                or 0
            )

        old_events = [await event(now - OLD - timedelta(minutes=n)) for n in range(7)]
        wake_event = await event(now - OLD)
        recent_event = await event(now - RECENT)

        async def journey(status: str, wake: int | None = None) -> int:
            return int(
                await db.scalar(
                    insert(Journey)
                    .values(
                        flow_id=flow_id,
                        flow_version_id=version_id,
                        contact_id=contact,
                        status=status,
                        node_id="confirm",
                        wake_event_id=wake,
                        entered_at=now - OLD,
                        updated_at=now - OLD,
                    )
                    .returning(Journey.id)
                )
                or 0
            )

        ended = await journey("completed")
        live = await journey("waiting", wake_event)
        failed = await journey("failed")

        async def step(journey_id: int, visit: int, age: timedelta) -> int:
            # A minute apart per visit, so a watermark can fall between them.
            return int(
                await db.scalar(
                    insert(Step)
                    .values(
                        journey_id=journey_id,
                        node_id="confirm",
                        visit=visit,
                        node_type="test.email",
                        status="done",
                        started_at=now - age - timedelta(minutes=visit),
                    )
                    .returning(Step.id)
                )
                or 0
            )

        old_steps = [await step(ended, n, OLD) for n in range(1, 8)]
        kept_steps = [
            await step(ended, 100, RECENT),
            await step(live, 1, OLD),
            await step(failed, 1, OLD),
        ]

        async def message(status: str, age: timedelta) -> int:
            message_id = int(
                await db.scalar(
                    insert(OutboxMessage)
                    .values(
                        idempotency_key=f"{status}-{age.days}",
                        channel="email",
                        contact_id=contact,
                        status=status,
                        payload={
                            "to": "åsa@example.se",
                            "subject": "Välkommen",
                            "text": "Hej Åsa, här är din rabattkod: SOMMAR",
                            "html": "<p>Hej Åsa</p>",
                        },
                        created_at=now - age,
                    )
                    .returning(OutboxMessage.id)
                )
                or 0
            )
            await db.execute(
                insert(Delivery).values(
                    outbox_id=message_id,
                    contact_id=contact,
                    channel="email",
                    category="marketing",
                    detail="250 OK: Hej Åsa, här är din rabattkod",
                    cleared_at=now - age,
                )
            )
            return message_id

        sent_old = await message("sent", OLD)
        sent_recent = await message("sent", RECENT)
        pending_old = await message("pending", OLD)
    return Seeded(
        ended,
        live,
        failed,
        old_steps,
        kept_steps,
        old_events,
        wake_event,
        recent_event,
        sent_old,
        sent_recent,
        pending_old,
    )


async def _ids(db: AsyncSession, column: object) -> set[int]:
    return set(await db.scalars(select(column)))  # type: ignore[call-overload]


@pytest.fixture
def small_batches(runtime: Runtime, settings: Settings) -> Runtime:
    runtime.settings = settings.model_copy(update={"retention_batch_size": 3})
    return runtime


async def test_prune_in_batches_keeps_recent_rows_and_what_journeys_need(
    small_batches: Runtime, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    rt = small_batches
    seeded = await _seed(rt, clock)
    await rt.fold_results()  # the results rollup counts the rows before they may go
    with caplog.at_level(logging.INFO, logger="runtime.retention"):
        report = await rt.prune()
    assert (report.steps, report.events, report.bodies) == (7, 7, 1)
    assert report.finished
    # Seven steps in batches of three: 3 + 3 + 1, and the progress is logged as it goes.
    progress = [r.getMessage() for r in caplog.records if "steps older than" in r.getMessage()]
    assert [line.rsplit(": ", 1)[1] for line in progress] == [
        "3 pruned so far",
        "6 pruned so far",
        "7 pruned so far",
    ]
    async with rt.sessions() as db:
        steps = await _ids(db, Step.id)
        events = await _ids(db, Event.id)
        messages = {m.id: m for m in await db.scalars(select(OutboxMessage))}
        details = dict((await db.execute(select(Delivery.outbox_id, Delivery.detail))).all())
        journeys = await _ids(db, Journey.id)
    assert steps == set(seeded.kept_steps)
    assert events == {seeded.wake_event, seeded.recent_event}
    # A pruned message keeps who and what for the outbox list; its body and the ledger's copy go.
    pruned = messages[seeded.sent_old].payload
    assert pruned["to"] == "åsa@example.se" and pruned["subject"] == "Välkommen"
    assert "text" not in pruned and "html" not in pruned and pruned["pruned_before"]
    assert details[seeded.sent_old] is None
    assert messages[seeded.sent_recent].payload["text"].startswith("Hej Åsa")
    assert messages[seeded.pending_old].payload["html"] == "<p>Hej Åsa</p>"
    assert details[seeded.sent_recent] and details[seeded.pending_old]
    # Journeys themselves (what the charts count) are never pruned.
    assert journeys == {seeded.ended, seeded.live, seeded.failed}
    # Nothing left to do: a second run prunes nothing.
    again = await rt.prune()
    assert (again.steps, again.events, again.bodies) == (0, 0, 0)


async def test_the_worker_prunes_once_per_interval(
    small_batches: Runtime, clock: FakeClock, settings: Settings
) -> None:
    rt = small_batches
    seeded = await _seed(rt, clock)
    await rt.work()
    async with rt.sessions() as db:
        assert await _ids(db, Step.id) == set(seeded.kept_steps)
    # Within the interval, work() steps and delivers but does not prune again.
    clock.advance(minutes=settings.retention_interval_minutes / 2)
    late = await _old_step(rt, clock, seeded.ended)
    await rt.work()
    async with rt.sessions() as db:
        assert await _ids(db, Step.id) == {*seeded.kept_steps, late}
    clock.advance(minutes=settings.retention_interval_minutes / 2)
    await rt.work()
    async with rt.sessions() as db:
        assert await _ids(db, Step.id) == set(seeded.kept_steps)


async def _old_step(rt: Runtime, clock: FakeClock, journey_id: int) -> int:
    async with rt.sessions() as db, db.begin():
        return int(
            await db.scalar(
                insert(Step)
                .values(
                    journey_id=journey_id,
                    node_id="reminder",
                    visit=1,
                    node_type="test.email",
                    status="done",
                    started_at=clock.now() - OLD,
                )
                .returning(Step.id)
            )
            or 0
        )


async def test_zero_days_keeps_rows_for_ever(
    runtime: Runtime, clock: FakeClock, settings: Settings
) -> None:
    runtime.settings = settings.model_copy(
        update={"retention_step_days": 0, "retention_event_days": 0, "retention_body_days": 0}
    )
    await _seed(runtime, clock)
    report = await runtime.prune()
    assert (report.steps, report.events, report.bodies) == (0, 0, 0)


async def test_a_rollup_watermark_holds_back_what_it_has_not_summed(
    small_batches: Runtime, clock: FakeClock
) -> None:
    rt = small_batches
    seeded = await _seed(rt, clock)
    summed_to: list[datetime | None] = [None]

    async def watermark(_db: AsyncSession) -> datetime | None:
        return summed_to[0]

    rt.retention_watermarks["steps"] = watermark
    # The rollup has summed nothing yet: no step goes, whatever its age.
    assert (await rt.prune()).steps == 0
    # Summed up to the fourth oldest step: the three before it go.
    async with rt.sessions() as db:
        starts = sorted(
            await db.scalars(select(Step.started_at).where(Step.id.in_(seeded.old_steps)))
        )
    summed_to[0] = starts[3]
    report = await rt.prune()
    assert report.steps == 3 and report.cutoffs["steps"] == starts[3]
