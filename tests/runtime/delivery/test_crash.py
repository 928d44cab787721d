"""A sender process SIGKILLed mid-send, on SQLite and PostgreSQL with the in-process executor:
the messages on its open connections may go out once more, with the same Message-ID; nothing else.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.db import create_engine, create_sessionmaker
from backend.settings import Settings
from nodes.sdk import SystemClock
from runtime.delivery.email import EmailDeliverer
from runtime.engine import Runtime
from runtime.executor.local import LocalExecutor
from runtime.messaging.gate import GatedDeliverer, GatePolicy
from tests.runtime.delivery.conftest import queue
from tests.runtime.delivery.processes import Sink, start_sink, unfinished, wait_until
from tests.runtime.nodes import test_registry

pytestmark = pytest.mark.long

POOL = 2
LEASE = timedelta(seconds=2)
# 24 messages at 0.3 s over two connections: 3.6 s of sending, so the quarter sent before
# the kill leaves more than a lease of work. A claim (ROUNDS x POOL) takes 1.2 s of its lease.
COUNT = 24


def _sender(settings: Settings, sessions: async_sessionmaker[AsyncSession], port: int) -> Runtime:
    clock = SystemClock()
    email = EmailDeliverer(hostname="127.0.0.1", port=port, sender="hi@shop.test", pool_size=POOL)
    policy = GatePolicy.from_settings(settings)
    return Runtime(
        sessions=sessions,
        registry=test_registry(),
        settings=settings,
        clock=clock,
        deliverers={"email": GatedDeliverer(email, sessions, clock, policy)},
        lease=LEASE,
    )


def _doomed(settings: Settings, port: int) -> None:
    """A process running the in-process executor until it is killed."""

    async def main() -> None:
        rt = _sender(settings, create_sessionmaker(create_engine(settings.database_url)), port)
        async with LocalExecutor(rt, sweep_interval=0.2):
            await asyncio.Event().wait()

    asyncio.run(main())


async def test_a_sender_killed_mid_send_repeats_at_most_its_open_connections(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, tmp_path: Path
) -> None:
    sink: Sink = start_sink(tmp_path, delay=0.3)
    try:
        rt = _sender(settings, sessions, sink.port)
        addresses = [
            f"anna.sjöberg.{n}@example.com" if n % 2 else f"kund.{n}@example.com"
            for n in range(COUNT)
        ]
        for to in addresses:
            await queue(rt, None, {"to": to, "subject": "Hej"}, category="transactional")
        doomed = mp.get_context("spawn").Process(target=_doomed, args=(settings, sink.port))
        doomed.start()
        try:
            await wait_until(lambda: len(sink.received()) >= COUNT // 4, timeout=60, what="sends")
        finally:
            doomed.kill()  # SIGKILL, mid-send: its answers were never recorded
            await asyncio.to_thread(doomed.join, 30)
        assert doomed.exitcode == -9

        async def finish() -> bool:
            await rt.drain()  # the dead sender's claim is taken over once its lease runs out
            return await unfinished(rt) == 0

        await wait_until(finish, timeout=60, what="the rest", every=0.5)
        await rt.deliverers["email"].inner.aclose()  # type: ignore[attr-defined]
        received = sink.received()
    finally:
        sink.child.stop()
    copies = Counter(str(m["rcpt"][0]) for m in received)
    assert set(copies) == set(addresses)
    repeated = [to for to, n in copies.items() if n > 1]
    assert len(received) - COUNT == len(repeated) <= POOL
    ids: defaultdict[str, set[str]] = defaultdict(set)
    for message in received:
        ids[str(message["rcpt"][0])].add(str(message["message_id"]))
    assert all(len(found) == 1 for found in ids.values())  # a repeat has the original Message-ID
