"""Faults: a worker dying mid-batch, duplicate events, two workers on the same work.

After each fault the same invariant must hold: every journey finishes its
path exactly once (no journey lost, stuck or doubled, one step row per node)
and every message reaches the real SMTP or HTTP server exactly once.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from backend.db import create_engine, create_sessionmaker
from backend.models import Event, Journey, OutboxMessage, Step
from backend.settings import Settings
from nodes.sdk import Services
from runtime.clock import FakeClock
from runtime.delivery.email import EmailDeliverer
from runtime.engine import Runtime
from runtime.events import EventIn, ingest_many
from tests.runtime.conftest import (
    Mailbox,
    Receiver,
    add_contacts,
    journeys,
    publish,
    steps,
    webhooks,
)
from tests.runtime.nodes import graph, test_registry

PATH = ["t", "hello", "g", "w", "hook"]


def _flow(hook_url: str) -> dict[str, Any]:
    """Email, a gate (to hold a worker), a wait for an open or a day, then a webhook."""
    return graph(
        [
            ("t", "test.trigger", {"event_type": "signed.up"}),
            ("hello", "test.email", {"subject": "Hello"}),
            ("g", "test.gate", {}),
            ("w", "test.wait_event", {"event_type": "app.opened", "timeout_hours": 24}),
            ("hook", "test.webhook", {"url": hook_url}),
        ],
        [
            ("t", "next", "hello"),
            ("hello", "next", "g"),
            ("g", "next", "w"),
            ("w", "event", "hook"),
            ("w", "timeout", "hook"),
        ],
    )


async def _enroll(rt: Runtime, count: int, hook_url: str) -> list[int]:
    """Sign everyone up in one transaction: the faults here come after enrollment
    (test_ingest_batch.py checks that a batch enrolls as the same events one by one do)."""
    ids = await add_contacts(rt, count)
    await publish(rt, _flow(hook_url))
    items = [EventIn("signed.up", contact_id=c, dedupe_key=f"signup-{c}") for c in ids]
    async with rt.sessions() as session, session.begin():
        results = await ingest_many(session, rt.versions, items, now=rt.clock.now())
    assert all(len(result.enrolled) == 1 for result in results)
    return ids


async def _finish(rt: Runtime, clock: FakeClock, openers: list[int]) -> None:
    """Let some customers open the app, then time the rest out."""
    await rt.drain()
    for contact in openers:
        await rt.ingest("app.opened", contact_id=contact)
    await rt.drain()
    clock.advance(hours=25)
    await rt.drain()


async def _assert_exactly_once(
    rt: Runtime, ids: list[int], mailbox: Mailbox, receiver: Receiver, openers: list[int]
) -> None:
    done = await journeys(rt)
    assert sorted(j.contact_id for j in done) == sorted(ids)  # none lost, none doubled
    assert {(j.status, j.exit_reason) for j in done} == {("completed", "end of flow")}
    history = await steps(rt)
    by_journey: dict[int, list[str]] = {}
    for step in history:
        by_journey.setdefault(step.journey_id, []).append(step.node_id)
        assert (step.status, step.visit) == ("done", 1)
    assert all(nodes == PATH for nodes in by_journey.values()) and len(by_journey) == len(ids)
    ports = Counter(s.port for s in history if s.node_id == "w")
    assert ports == {"event": len(openers), "timeout": len(ids) - len(openers)}
    # Delivered exactly once, to real servers.
    assert Counter(mailbox.subjects()) == {"Hello": len(ids)}
    assert len(set(mailbox.message_ids())) == len(ids)
    assert sorted(m["To"] for m in mailbox.messages) == sorted(f"c{c}@example.test" for c in ids)
    keys = receiver.keys()
    assert len(keys) == len(set(keys)) == len(ids)
    async with rt.sessions() as session:
        statuses = Counter((await session.execute(select(OutboxMessage.status))).scalars())
    assert statuses == {"sent": 2 * len(ids)}


async def test_a_stalled_workers_claim_expires_and_its_late_write_is_dropped(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox, receiver: Receiver
) -> None:
    ids = await _enroll(runtime, 30, receiver.url)
    gate, at_gate = asyncio.Event(), asyncio.Event()
    stalled = Runtime(
        sessions=runtime.sessions,
        registry=runtime.registry,
        settings=runtime.settings,
        clock=clock,
        deliverers=runtime.deliverers,
        services=Services(extras={"gate": gate, "at_gate": at_gate}),
        worker_id="stalled",
    )
    claim = asyncio.create_task(stalled.step())
    await at_gate.wait()  # it claimed every journey and sits in node code

    # The lease hides the claimed journeys from everyone else...
    assert (await runtime.drain()).claimed == 0
    clock.advance(runtime.lease + timedelta(seconds=1))
    # ...until it runs out: another worker takes them over.
    taken = await runtime.drain()
    assert (taken.claimed, taken.sent) == (30, 30)
    gate.set()
    late = await claim
    assert (late.claimed, late.written, late.steps) == (30, 0, 0)

    openers = ids[::3]
    await _finish(runtime, clock, openers)
    await _assert_exactly_once(runtime, ids, mailbox, receiver, openers)


class _StallAfter:
    """A gate that lets ``n`` journeys through, then blocks for ever and says so."""

    def __init__(self, n: int, stuck: Any) -> None:
        self.n = n
        self.stuck = stuck

    def set(self) -> None:
        return None

    async def wait(self) -> None:
        self.n -= 1
        if self.n < 0:
            self.stuck.set()
            await asyncio.Event().wait()


def _doomed_worker(url: str, start: str, smtp_port: int, stuck: Any) -> None:
    """A worker process that drains in batches of ten and stalls in its fourth batch."""

    async def main() -> None:
        engine = create_engine(url)
        clock = FakeClock(datetime.fromisoformat(start))
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            environment="test",
            database_url=url,
            secret_key="test-secret",
            batch_size=10,
            egress_allow="127.0.0.1",
        )
        rt = Runtime(
            sessions=create_sessionmaker(engine),
            registry=test_registry(),
            settings=settings,
            clock=clock,
            deliverers={
                "email": EmailDeliverer(hostname="127.0.0.1", port=smtp_port, sender="a@b.test"),
                "webhook": webhooks(settings, clock),
            },
            services=Services(
                extras={"gate": _StallAfter(35, stuck), "at_gate": _StallAfter(0, stuck)}
            ),
            worker_id="doomed",
        )
        await rt.drain()

    asyncio.run(main())


@pytest.mark.long
async def test_a_worker_process_killed_mid_batch_loses_nothing(
    runtime: Runtime,
    clock: FakeClock,
    mailbox: Mailbox,
    receiver: Receiver,
    smtp: tuple[Mailbox, int],
    db_url: str,
) -> None:
    # Three batches of ten finished, one claimed and lost, and twenty more for the others.
    ids = await _enroll(runtime, 60, receiver.url)
    context = mp.get_context("spawn")
    stuck = context.Event()
    worker = context.Process(
        target=_doomed_worker, args=(db_url, clock.now().isoformat(), smtp[1], stuck)
    )
    worker.start()
    try:
        assert await asyncio.to_thread(stuck.wait, 120), "the worker never reached its stall"
    finally:
        worker.kill()  # SIGKILL: no cleanup, no rollback message, no lease release
        await asyncio.to_thread(worker.join, 30)
    assert worker.exitcode == -9

    async with runtime.sessions() as session:
        leased = (
            await session.execute(select(Journey.id).where(Journey.lease_owner.like("doomed:%")))
        ).all()
        stepped = await session.scalar(select(func.count(func.distinct(Step.journey_id))))
    assert len(leased) == 10  # the batch it died in, claimed but never written
    assert stepped == 30  # the three batches it finished are durable
    assert len(mailbox.messages) == 30

    assert (await runtime.drain()).claimed == 20  # the dead worker's claim is still leased
    clock.advance(runtime.lease + timedelta(seconds=1))
    await runtime.drain()
    openers = ids[:15]
    await _finish(runtime, clock, openers)
    await _assert_exactly_once(runtime, ids, mailbox, receiver, openers)


async def test_duplicate_events_are_stored_and_acted_on_once(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox, receiver: Receiver
) -> None:
    ids = await add_contacts(runtime, 20)
    await publish(runtime, _flow(receiver.url))
    # Every sign-up arrives twice, the copies at the same moment (a retrying client).
    results = await asyncio.gather(
        *(
            runtime.ingest("signed.up", contact_id=contact, dedupe_key=f"signup-{contact}")
            for contact in ids + ids
        )
    )
    assert sum(r.duplicate for r in results) == len(ids)
    assert sum(len(r.enrolled) for r in results) == len(ids)
    await runtime.drain()
    opened: list[Any] = []
    for contact in ids[:10]:
        for _ in range(2):
            opened.append(
                await runtime.ingest("app.opened", contact_id=contact, dedupe_key=f"open-{contact}")
            )
    assert [len(r.woken) for r in opened] == [1, 0] * 10
    assert [r.duplicate for r in opened] == [False, True] * 10
    assert all(a.event_id == b.event_id for a, b in zip(opened[::2], opened[1::2], strict=True))
    await _finish(runtime, clock, [])
    async with runtime.sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(Event))
    assert stored == len(ids) + 10  # one row per sign-up and per open
    await _assert_exactly_once(runtime, ids, mailbox, receiver, ids[:10])


async def test_the_same_trigger_twice_at_once_without_a_dedupe_key_enrolls_once(
    runtime: Runtime,
) -> None:
    ids = await add_contacts(runtime, 10)
    await publish(runtime, _flow("http://127.0.0.1:9/"))
    results = await asyncio.gather(
        *(runtime.ingest("signed.up", contact_id=c) for c in ids for _ in range(3))
    )
    assert sum(len(r.enrolled) for r in results) == len(ids)
    assert sorted(j.contact_id for j in await journeys(runtime)) == ids


@pytest.mark.long
async def test_two_workers_draining_the_same_work_at_once(
    runtime: Runtime, clock: FakeClock, mailbox: Mailbox, receiver: Receiver
) -> None:
    """The same job run twice: two runtimes (two workers) claim from one database concurrently."""
    # Ten batches of ten between the two, as many claims as 300 in batches of 25 made.
    ids = await _enroll(runtime, 100, receiver.url)
    twin = Runtime(
        sessions=runtime.sessions,
        registry=test_registry(),
        settings=runtime.settings.model_copy(update={"batch_size": 10}),
        clock=clock,
        deliverers=runtime.deliverers,
        worker_id="twin",
    )
    runtime.settings = runtime.settings.model_copy(update={"batch_size": 10})
    first, second = await asyncio.gather(runtime.drain(), twin.drain())
    assert first.claimed + second.claimed == 100
    assert first.steps + second.steps == 100 * 4
    openers = ids[::2]
    clock.advance(minutes=1)
    for contact in openers:
        await runtime.ingest("app.opened", contact_id=contact)
    await asyncio.gather(runtime.drain(), twin.drain(), runtime.drain())
    clock.advance(hours=25)
    reports = await asyncio.gather(twin.drain(), runtime.drain())
    assert sum(r.sent for r in reports) == 100 - len(openers)
    await _assert_exactly_once(runtime, ids, mailbox, receiver, openers)
