"""A burst of entries is a few jobs taking full batches, not a job per ring (arq, real Redis).

Every entry commits in its own transaction and rings the doorbell, as a busy
web app does; an arq worker runs beside the burst. What is counted: the jobs
the worker ran, the jobs that found work, and the steps each of those took.
"""

from __future__ import annotations

import asyncio
from typing import Any

from arq.connections import RedisSettings, create_pool
from arq.worker import Worker
from sqlalchemy import func, select

from backend.models import Journey
from runtime.doorbell import COALESCE_SECONDS, coalesced
from runtime.engine import Runtime
from runtime.executor.arq_worker import ArqDoorbell, JobStats, worker_settings
from tests.runtime.conftest import add_contacts, publish
from tests.runtime.nodes import graph

# Three batches' worth of entries (batch size 100), each its own transaction and ring.
# As with the 600 this used to send, the coalescer passes on a fraction of the rings and
# one or two jobs take all the work, within the one per hundred entries allowed below.
BURST = 300

PARK = graph(
    [("t", "test.trigger", {"event_type": "signed.up"}), ("w", "test.wait", {"hours": 1})],
    [("t", "next", "w")],
)


async def _waiting(rt: Runtime) -> int:
    async with rt.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Journey).where(Journey.status == "waiting")
        )
    return int(count or 0)


async def test_a_burst_of_rings_is_a_few_jobs_of_full_batches(
    runtime: Runtime, redis_url: str, queue_name: str
) -> None:
    rt = runtime
    rt.settings = rt.settings.model_copy(
        update={"redis_url": redis_url, "queue_name": queue_name, "sweep_interval_seconds": 30}
    )
    contacts = await add_contacts(rt, BURST)
    await publish(rt, PARK)
    redis = await create_pool(RedisSettings.from_dsn(redis_url))
    # A long job budget: no job hands over to a fresh one mid-burst (that rings, uncoalesced).
    kwargs: dict[str, Any] = worker_settings(rt.settings, runtime=rt, max_jobs=4, job_budget=600)
    kwargs["cron_jobs"] = []  # only the rings start jobs here
    worker = Worker(**kwargs)
    running = asyncio.create_task(worker.async_run())
    while not isinstance(rt.doorbell, ArqDoorbell):  # the worker's start-up installs it
        await asyncio.sleep(0.01)
    bell = rt.doorbell
    try:
        for contact in contacts:  # BURST transactions, BURST rings
            await rt.ingest("signed.up", contact_id=contact)
        await asyncio.sleep(COALESCE_SECONDS * 2)  # the burst's trailing ring
        await bell.settle()
        for _ in range(600):
            if await _waiting(rt) == BURST and not await redis.zcard(queue_name):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the last job finishes
    finally:
        running.cancel()
        await worker.close()
        await redis.aclose()
    stats: JobStats = worker.ctx["stats"]
    rung = coalesced(bell).rung
    assert await _waiting(rt) == BURST
    assert stats.steps == 2 * BURST  # every journey stepped into its wait, by these jobs
    # BURST rings asked; the coalescer passed fewer on, each at most one job.
    assert stats.jobs == worker.jobs_complete <= rung < BURST
    # Jobs arriving while one works hand over to it: the burst is one or a few jobs
    # taking full batches, not hundreds of concurrent jobs finding a few journeys each.
    assert stats.working <= BURST // 100, stats
    assert stats.folded >= stats.jobs - stats.working - stats.idle, stats
    assert stats.steps / stats.working >= 100, stats
