"""arq executor on real Redis: doorbell jobs, the periodic sweep, a flushed Redis, a job run twice.

Workers run in this process in burst mode (``arq.worker.Worker.main`` returns
when the queue is empty), sharing the test's Runtime and its fake clock.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker

from runtime.clock import FakeClock
from runtime.doorbell import COALESCE_SECONDS
from runtime.engine import Runtime
from runtime.executor.arq_worker import JOB_NAME, ArqDoorbell, worker_settings
from tests.runtime.conftest import Mailbox, add_contacts, journeys, publish, steps
from tests.runtime.nodes import graph

# FLUSHDB empties a whole Redis database: the test that does it uses one of its own,
# so it cannot wipe the queues of the other tests (or of a suite running beside it).
FLUSHED_DB = 14


def _pool(url: str) -> Any:
    return create_pool(RedisSettings.from_dsn(url))


def _for_arq(rt: Runtime, url: str, queue_name: str) -> Runtime:
    """Set the test runtime up for arq; the sweep runs at worker start-up (then every 30 s)."""
    rt.settings = rt.settings.model_copy(
        update={"redis_url": url, "queue_name": queue_name, "sweep_interval_seconds": 30}
    )
    return rt


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await _pool(redis_url)
    yield pool
    await pool.aclose()


@pytest.fixture
def arq_runtime(runtime: Runtime, redis_url: str, queue_name: str) -> Runtime:
    return _for_arq(runtime, redis_url, queue_name)


@pytest.fixture
def flush_url(redis_url: str) -> str:
    return re.sub(r"(/\d+)?$", f"/{FLUSHED_DB}", redis_url, count=1)


async def _burst(rt: Runtime, *, sweep: bool, max_jobs: int = 4) -> Worker:
    """Run a worker until its queue is empty; ``sweep=False`` leaves out the periodic sweep."""
    kwargs: dict[str, Any] = worker_settings(rt.settings, runtime=rt, burst=True, max_jobs=max_jobs)
    if not sweep:
        kwargs["cron_jobs"] = []
    worker = Worker(**kwargs)
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


FLOW = graph(
    [
        ("t", "test.trigger", {"event_type": "signed.up"}),
        ("hello", "test.email", {"subject": "Hello"}),
        ("w", "test.wait", {"hours": 1}),
        ("bye", "test.email", {"subject": "Bye"}),
    ],
    [("t", "next", "hello"), ("hello", "next", "w"), ("w", "next", "bye")],
)


async def _signups(rt: Runtime, count: int) -> list[int]:
    ids = await add_contacts(rt, count)
    await publish(rt, FLOW)
    for contact in ids:
        await rt.ingest("signed.up", contact_id=contact)
    return ids


async def test_a_ring_enqueues_a_job_and_a_worker_steps_the_batch(
    arq_runtime: Runtime, redis: ArqRedis, mailbox: Mailbox
) -> None:
    rt = arq_runtime
    bell = ArqDoorbell(redis, rt.settings.queue_name)
    rt.doorbell = bell
    await _signups(rt, 25)
    await asyncio.sleep(COALESCE_SECONDS * 2)  # the burst's trailing ring
    await bell.settle()
    # A job only says "there is work": it never names a customer.
    jobs = await redis.queued_jobs(queue_name=rt.settings.queue_name)
    assert jobs and {(job.function, job.args, tuple(job.kwargs)) for job in jobs} == {
        (JOB_NAME, (), ())
    }
    queued = len(jobs)
    assert queued < 25  # rings in a burst are coalesced
    worker = await _burst(rt, sweep=False)
    assert worker.jobs_complete == queued and worker.jobs_failed == 0
    assert Counter(mailbox.subjects()) == {"Hello": 25}
    assert {j.status for j in await journeys(rt)} == {"waiting"}


async def test_without_a_ring_only_the_sweep_finds_due_work(
    arq_runtime: Runtime, redis: ArqRedis, clock: FakeClock, mailbox: Mailbox
) -> None:
    rt = arq_runtime
    await _signups(rt, 10)  # the default doorbell rings nobody
    await _burst(rt, sweep=False)
    assert mailbox.messages == []  # no job, no sweep: nothing ran
    await _burst(rt, sweep=True)
    assert Counter(mailbox.subjects()) == {"Hello": 10}
    # Timers coming due never ring: the sweep steps them.
    clock.advance(hours=1)
    await _burst(rt, sweep=True)
    assert Counter(mailbox.subjects()) == {"Hello": 10, "Bye": 10}
    assert {j.status for j in await journeys(rt)} == {"completed"}


async def test_a_flushed_redis_loses_no_work(
    runtime: Runtime, flush_url: str, queue_name: str, clock: FakeClock, mailbox: Mailbox
) -> None:
    rt = _for_arq(runtime, flush_url, queue_name)
    redis = await _pool(flush_url)
    try:
        await _flush_and_recover(rt, redis, clock, mailbox)
    finally:
        await redis.aclose()


async def _flush_and_recover(
    rt: Runtime, redis: ArqRedis, clock: FakeClock, mailbox: Mailbox
) -> None:
    bell = ArqDoorbell(redis, rt.settings.queue_name)
    rt.doorbell = bell
    await _signups(rt, 10)
    await asyncio.sleep(COALESCE_SECONDS * 2)  # the burst's trailing ring, before the flush
    await bell.settle()
    assert await redis.zcard(rt.settings.queue_name) >= 1
    await redis.flushdb()  # every queued job is gone
    assert await redis.zcard(rt.settings.queue_name) == 0
    await _burst(rt, sweep=False)
    assert mailbox.messages == []
    await _burst(rt, sweep=True)
    assert Counter(mailbox.subjects()) == {"Hello": 10}

    # Mid-run: the timers come due and Redis is flushed again before any worker looks.
    clock.advance(hours=1)
    await redis.flushdb()
    await _burst(rt, sweep=True)
    assert Counter(mailbox.subjects()) == {"Hello": 10, "Bye": 10}
    assert {j.status for j in await journeys(rt)} == {"completed"}


async def test_the_same_job_enqueued_many_times_runs_the_work_once(
    arq_runtime: Runtime, redis: ArqRedis, clock: FakeClock, mailbox: Mailbox
) -> None:
    rt = arq_runtime
    rt.settings = rt.settings.model_copy(update={"batch_size": 7})
    await _signups(rt, 60)
    for _ in range(6):  # duplicate jobs, run concurrently by one worker (max_jobs=4)
        await redis.enqueue_job(JOB_NAME, _queue_name=rt.settings.queue_name)
    worker = await _burst(rt, sweep=False, max_jobs=4)
    assert worker.jobs_complete == 6
    clock.advance(hours=1)
    for _ in range(3):
        await redis.enqueue_job(JOB_NAME, _queue_name=rt.settings.queue_name)
    await _burst(rt, sweep=True, max_jobs=4)
    assert Counter(mailbox.subjects()) == {"Hello": 60, "Bye": 60}
    assert len(set(mailbox.message_ids())) == 120
    history = await steps(rt)
    assert len(history) == 60 * 4
    assert len({(s.journey_id, s.node_id, s.visit) for s in history}) == 60 * 4
