"""The doorbell: one ring per transaction, bursts coalesced, and never a ring lost."""

from __future__ import annotations

import asyncio
import math
import time

from runtime.doorbell import COALESCE_SECONDS, Coalesced
from runtime.engine import Runtime
from runtime.events import EventIn, ingest_many
from tests.runtime.conftest import add_contacts, publish
from tests.runtime.nodes import graph
from tests.runtime.test_waits import CountingBell

FLOW = graph([("t", "test.trigger", {"event_type": "signed.up"})], [])


async def test_a_batch_rings_once_however_many_it_enrolls(runtime: Runtime) -> None:
    ids = await add_contacts(runtime, 300)
    await publish(runtime, FLOW)
    bell = CountingBell()
    runtime.doorbell = bell
    async with runtime.sessions() as session, session.begin():
        results = await ingest_many(
            session,
            runtime.versions,
            [EventIn("signed.up", contact_id=c) for c in ids],
            now=runtime.clock.now(),
            doorbell=bell,
        )
        assert bell.rings == 0  # not before the commit: the worker must see the rows
    assert sum(len(r.enrolled) for r in results) == 300
    assert bell.rings == 1


async def test_a_burst_of_transactions_rings_a_few_times_and_last_after_the_last(
    runtime: Runtime,
) -> None:
    ids = await add_contacts(runtime, 60)
    await publish(runtime, FLOW)
    bell = TimedBell()
    runtime.doorbell = bell
    started = time.monotonic()
    for contact in ids[:-1]:
        await runtime.ingest("signed.up", contact_id=contact)
    last_started = time.monotonic()
    await runtime.ingest("signed.up", contact_id=ids[-1])
    windows = math.ceil((time.monotonic() - started) / COALESCE_SECONDS)
    assert bell.rings >= 1  # the first of a quiet spell goes out at once
    rung_during = bell.rings
    await asyncio.sleep(COALESCE_SECONDS * 2)
    # The last ring stands for the last commit: it went out after that commit began
    # (trailing, or at once when the last commit opened a new window), and at most one
    # trailing ring follows the burst.
    assert bell.times[-1] >= last_started
    assert bell.rings - rung_during <= 1
    # At most a leading and a trailing ring per window, not one per transaction.
    assert bell.rings <= 2 * windows + 1


class TimedBell(CountingBell):
    """Counts rings and notes when each went out."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def ring(self) -> None:
        super().ring()
        self.times.append(time.monotonic())


async def test_spaced_rings_each_go_out_at_once() -> None:
    inner = CountingBell()
    bell = Coalesced(inner, window=0.05)
    bell.ring()
    assert inner.rings == 1
    bell.ring()
    bell.ring()
    assert inner.rings == 1  # inside the window: one trailing ring is scheduled
    await asyncio.sleep(0.08)
    assert inner.rings == 2
    await asyncio.sleep(0.06)
    bell.ring()
    assert inner.rings == 3
