"""Delivery faults with real processes: two `touchflow worker`s on PostgreSQL and Redis, a slow
recording SMTP server, a sender SIGKILLed mid-run, Redis stopped mid-run.

The demo flow's confirmation goes to every contact. The SMTP server answers each
message only after a delay, and the lease is short (a few seconds), so a run
takes several leases to send: a claim that outlived its sender would be taken
over by the other worker and its messages sent twice. One claim (``ROUNDS``
times the pool, 16 messages) takes 1.2 s of a 3 s lease; ``COUNT`` (120) is
7-8 claims, 4.5 s of sending for two workers, more than a lease, and a sender
killed after a third leaves the survivor 6 s of work: it takes over the dead
sender's claims while it is still sending its own.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.db import create_engine, create_sessionmaker
from backend.settings import Settings
from runtime.engine import Runtime
from tests.runtime.delivery.processes import (
    Child,
    Sink,
    confirmations,
    demo_runtime,
    start_redis,
    start_sink,
    start_worker,
    unfinished,
    wait_until,
    worker_env,
)
from tests.support.stores import (
    REDIS_URL,
    fresh_database,
    missing_service,
    redis_available,
    truncate_all,
)

pytestmark = pytest.mark.long

LEASE_SECONDS = 3
POOL = 4
COUNT = 120


@pytest.fixture(scope="module")
async def pg_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    async with fresh_database("postgresql", tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture
async def pg_sessions(pg_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(pg_url)
    yield create_sessionmaker(engine)
    await truncate_all(engine)
    await engine.dispose()


@pytest.fixture
async def shared_redis() -> str:
    if not await redis_available(REDIS_URL):
        missing_service(f"Redis at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()


def _runtime(pg_url: str, sessions: async_sessionmaker[AsyncSession]) -> Runtime:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=pg_url,
        secret_key="test-secret",
    )
    return demo_runtime(settings, sessions)


def _addresses(count: int) -> list[str]:
    # A third are Swedish (the demo's share): they go out with SMTPUTF8.
    return [
        f"anna.sjöberg.{n}@example.com" if n % 3 == 0 else f"kund.{n}@example.com"
        for n in range(count)
    ]


def _workers(
    tmp: Path, children: list[Child], pg_url: str, redis_url: str, sink: Sink, count: int = 2
) -> list[Child]:
    env = worker_env(
        pg_url,
        redis_url,
        f"tf-faults-{secrets.token_hex(4)}",
        sink,
        lease_seconds=LEASE_SECONDS,
        smtp_pool_size=POOL,
    )
    workers = [start_worker(tmp, f"worker-{n}", env) for n in range(count)]
    children.extend(workers)
    return workers


def _copies(received: list[dict[str, object]]) -> Counter[str]:
    return Counter(str(m["rcpt"][0]) for m in received)


async def test_a_slow_server_gets_every_message_exactly_once_from_two_workers(
    pg_url: str,
    pg_sessions: async_sessionmaker[AsyncSession],
    shared_redis: str,
    tmp_path: Path,
    children: list[Child],
) -> None:
    count = COUNT
    rt = _runtime(pg_url, pg_sessions)
    await confirmations(rt, _addresses(count))
    sink = start_sink(tmp_path, delay=0.3)
    children.append(sink.child)
    workers = _workers(tmp_path, children, pg_url, shared_redis, sink)

    await wait_until(lambda: len(sink.received()) >= count, timeout=90, what="every confirmation")
    await wait_until(lambda: _settled(rt), timeout=30, what="the outbox to settle")
    # Leases of a few seconds: a claim that outlived its sender would be re-sent by now.
    await asyncio.sleep(2 * LEASE_SECONDS)
    received = sink.received()
    assert all(w.process.poll() is None for w in workers), [w.output()[-2000:] for w in workers]
    copies = _copies(received)
    assert set(copies) == set(_addresses(count))
    assert [to for to, n in copies.items() if n > 1] == []
    assert len(received) == count
    assert all(m["smtputf8"] == (not str(m["rcpt"][0]).isascii()) for m in received)
    assert all(str(m["rcpt"][0]) in str(m["to"]) for m in received)


async def _settled(rt: Runtime) -> bool:
    return await unfinished(rt) == 0


async def test_a_sender_killed_mid_run_resends_at_most_its_open_connections(
    pg_url: str,
    pg_sessions: async_sessionmaker[AsyncSession],
    shared_redis: str,
    tmp_path: Path,
    children: list[Child],
) -> None:
    count = COUNT
    rt = _runtime(pg_url, pg_sessions)
    await confirmations(rt, _addresses(count))
    sink = start_sink(tmp_path, delay=0.3)
    children.append(sink.child)
    doomed, survivor = _workers(tmp_path, children, pg_url, shared_redis, sink)

    await wait_until(lambda: len(sink.received()) >= count // 3, timeout=60, what="a third")
    doomed.kill()  # SIGKILL: no cleanup, its claims stay leased until they run out
    assert doomed.process.returncode == -9

    await wait_until(lambda: len(_copies(sink.received())) >= count, timeout=90, what="the rest")
    await wait_until(lambda: _settled(rt), timeout=30, what="the outbox to settle")
    await asyncio.sleep(2 * LEASE_SECONDS)
    received = sink.received()
    assert survivor.process.poll() is None, survivor.output()[-2000:]
    copies = _copies(received)
    assert set(copies) == set(_addresses(count))
    repeated = [to for to, n in copies.items() if n > 1]
    # At most the messages that were on the killed sender's open connections, each once more.
    assert len(received) - count == len(repeated) <= POOL
    ids: defaultdict[str, set[str]] = defaultdict(set)
    for message in received:
        ids[str(message["rcpt"][0])].add(str(message["message_id"]))
    assert all(len(ids[to]) == 1 for to in repeated)  # a repeat carries the original Message-ID


async def test_workers_outlive_a_redis_outage_and_deliver_everything_once(
    pg_url: str,
    pg_sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    children: list[Child],
) -> None:
    # A Redis of the test's own: the shared one is never stopped.
    redis, port = start_redis(tmp_path)
    children.append(redis)
    redis_url = f"redis://127.0.0.1:{port}/0"
    rt = _runtime(pg_url, pg_sessions)
    first = _addresses(COUNT)
    await confirmations(rt, first)
    sink = start_sink(tmp_path, delay=0.2)
    children.append(sink.child)
    workers = _workers(tmp_path, children, pg_url, redis_url, sink)
    await wait_until(lambda: len(sink.received()) >= 10, timeout=60, what="the first emails")

    redis.kill()
    outage = time.monotonic()
    # Form submissions keep coming while Redis is away: their journeys are stepped and
    # their confirmations sent from the database alone.
    second = [f"under.avbrottet.{n}@example.com" for n in range(COUNT // 2)]
    await confirmations(rt, second, flow=False)
    await wait_until(
        lambda: len(sink.received()) >= len(first) + len(second),
        timeout=40,
        what="every confirmation while Redis is down",
    )
    await asyncio.sleep(max(0.0, 12 - (time.monotonic() - outage)))  # stay down a while
    assert all(w.process.poll() is None for w in workers), [w.output()[-3000:] for w in workers]

    redis = start_redis(tmp_path, port)[0]
    children.append(redis)
    await wait_until(
        lambda: all("Redis is back" in w.output() for w in workers), timeout=60, what="reconnects"
    )
    third = [f"efter.{n}@example.com" for n in range(COUNT // 4)]
    await confirmations(rt, third, flow=False)
    everyone = first + second + third
    await wait_until(lambda: len(sink.received()) >= len(everyone), timeout=60, what="the rest")
    await wait_until(lambda: _settled(rt), timeout=30, what="the outbox to settle")
    await asyncio.sleep(2 * LEASE_SECONDS)

    copies = _copies(sink.received())
    assert set(copies) == set(everyone) and set(copies.values()) == {1}
    for worker in workers:
        log = worker.output()
        assert log.count("Redis is unreachable") == 1, log[-3000:]  # the outage, logged once
        assert worker.process.poll() is None
        assert worker.stop() == 0  # it exits when told to, and cleanly
