"""A message in flight belongs to one sender: renewed claims, fenced sends, results at once.

In-process and on both databases; `test_worker_faults.py` proves the same with
real worker processes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import OutboxMessage, OutboxStatus
from backend.settings import Settings
from nodes.sdk import SystemClock
from runtime.claims import claim_outbox, release_stale_outbox
from runtime.clock import FakeClock
from runtime.delivery import LeaseLost, Outgoing
from runtime.delivery.email import EmailDeliverer
from runtime.engine import Runtime
from runtime.executor.local import LocalExecutor
from runtime.outbox import ROUNDS, deliver_batch
from tests.runtime.conftest import Mailbox, _free_port
from tests.runtime.delivery.conftest import gated_runtime, queue


class SlowMailbox(Mailbox):
    """Answers each message after ``delay`` seconds (a provider under load)."""

    delay: float = 0.2

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(self.delay)
        return answer


@pytest.fixture
def slow_smtp() -> Iterator[tuple[SlowMailbox, int]]:
    mailbox = SlowMailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def _slow_runtime(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    port: int,
    *,
    pool: int,
    lease: float,
) -> Runtime:
    email = EmailDeliverer(hostname="127.0.0.1", port=port, sender="hi@shop.test", pool_size=pool)
    rt = gated_runtime(sessions, settings, FakeClock(), {"email": email})
    rt.clock = SystemClock()  # leases run out in real time here
    for deliverer in rt.deliverers.values():
        deliverer.clock = rt.clock  # type: ignore[attr-defined]
    rt.lease = timedelta(seconds=lease)
    return rt


async def _queue_many(rt: Runtime, count: int) -> list[int]:
    return [
        await queue(
            rt, None, {"to": f"c{n}@example.test", "subject": f"m{n}"}, category="transactional"
        )
        for n in range(count)
    ]


async def _statuses(rt: Runtime) -> Counter[str]:
    async with rt.sessions() as session:
        return Counter((await session.execute(select(OutboxMessage.status))).scalars())


async def test_two_senders_and_a_slow_server_send_each_message_once(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    slow_smtp: tuple[SlowMailbox, int],
) -> None:
    mailbox, port = slow_smtp
    # 2 connections at 0.2 s per message: 40 messages take 4 s, four leases of 1 s.
    rt = _slow_runtime(sessions, settings, port, pool=2, lease=1.0)
    await _queue_many(rt, 40)
    async with LocalExecutor(rt, workers=2, sweep_interval=0.1, budget_seconds=1.0):
        for _ in range(200):
            if (await _statuses(rt)) == {"sent": 40}:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # past another lease: a stale claim would be re-sent now
    assert await _statuses(rt) == {"sent": 40}
    assert sorted(Counter(mailbox.subjects()).values()) == [1] * 40
    await rt.deliverers["email"].inner.aclose()  # type: ignore[attr-defined]


async def test_each_result_is_committed_as_soon_as_the_server_answers(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    slow_smtp: tuple[SlowMailbox, int],
) -> None:
    mailbox, port = slow_smtp
    rt = _slow_runtime(sessions, settings, port, pool=1, lease=30.0)
    await _queue_many(rt, ROUNDS)
    batch = asyncio.create_task(deliver_batch(rt))
    while len(mailbox.messages) < 2:
        await asyncio.sleep(0.02)
    statuses = await _statuses(rt)
    assert not batch.done()
    assert statuses["sent"] >= 1 and statuses["sending"] >= 1  # mid-batch, already recorded
    report = await batch
    assert (report.claimed, report.sent) == (ROUNDS, ROUNDS)
    await rt.deliverers["email"].inner.aclose()  # type: ignore[attr-defined]


async def test_a_claim_is_sized_to_what_the_channel_sends_at_once(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    slow_smtp: tuple[SlowMailbox, int],
) -> None:
    _, port = slow_smtp
    rt = _slow_runtime(sessions, settings, port, pool=2, lease=30.0)
    rt.settings = rt.settings.model_copy(update={"batch_size": 500})
    await _queue_many(rt, 20)
    report = await deliver_batch(rt)
    assert report.claimed == ROUNDS * 2  # not the 500 of a journey batch
    await rt.deliverers["email"].inner.aclose()  # type: ignore[attr-defined]


async def test_one_statement_claims_every_channel_each_sized_to_it_on_postgresql(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    slow_smtp: tuple[SlowMailbox, int],
) -> None:
    _, port = slow_smtp
    rt = _slow_runtime(sessions, settings, port, pool=2, lease=30.0)
    rt.settings = rt.settings.model_copy(update={"batch_size": 500})
    await _queue_many(rt, 20)
    for n in range(10):  # a channel nothing here can send: claimed a few at a time
        await queue(rt, None, {"to": f"f{n}"}, channel="fax", category="transactional")
    engine = sessions.kw["bind"]
    claims: list[str] = []
    ledger: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "attempts=(outbox_messages.attempts +" in statement:
            claims.append(statement)
        if statement.lstrip().startswith("UPDATE deliveries"):
            ledger.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        report = await deliver_batch(rt)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert report.claimed == ROUNDS * 2 + ROUNDS  # email's two connections, and the rest
    assert (report.sent, report.retried) == (ROUNDS * 2, ROUNDS)
    # PostgreSQL: one statement for every channel; SQLite: one per channel and the rest.
    assert len(claims) == (1 if engine.dialect.name == "postgresql" else 2)
    # PostgreSQL: the ledger's acceptances ride in the statement that records the results.
    assert (ledger == []) == (engine.dialect.name == "postgresql")
    await rt.deliverers["email"].inner.aclose()  # type: ignore[attr-defined]


async def test_the_send_check_refuses_a_message_another_sender_took_over(
    gated: Runtime, clock: FakeClock, mailbox: Mailbox
) -> None:
    message_id = await queue(
        gated, None, {"to": "a@example.test", "subject": "Once"}, category="transactional"
    )
    async with gated.sessions() as session, session.begin():
        [row] = await claim_outbox(
            session, owner="stalled", now=clock.now(), limit=10, lease=gated.lease
        )
    # The stalled sender's lease runs out and another sender takes the message over.
    clock.advance(gated.lease + timedelta(seconds=1))
    async with gated.sessions() as session, session.begin():
        await release_stale_outbox(session, now=clock.now())
        await claim_outbox(session, owner="alive", now=clock.now(), limit=10, lease=gated.lease)

    def attempt(owner: str) -> Outgoing:
        return Outgoing(
            id=row.id,
            idempotency_key=row.idempotency_key,
            channel="email",
            payload=row.payload,
            category=row.category,
            lease_owner=owner,
        )

    with pytest.raises(LeaseLost):
        await gated.deliverers["email"].deliver(attempt("stalled"))
    assert mailbox.messages == []
    await gated.deliverers["email"].deliver(attempt("alive"))
    assert mailbox.subjects() == ["Once"]
    # An expired lease that nobody took over yet is not a licence to send either.
    clock.advance(gated.lease + timedelta(seconds=1))
    with pytest.raises(LeaseLost):
        await gated.deliverers["email"].deliver(attempt("alive"))
    async with gated.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(OutboxMessage))
        status = await session.scalar(
            select(OutboxMessage.status).where(OutboxMessage.id == message_id)
        )
    assert (count, status) == (1, OutboxStatus.sending.value)
