"""Emails/s through the outbox to a local SMTP sink answering after 0, 50 and 600 ms per message.

For each sink delay the figures are (printed, never asserted):

- the outbox: queued messages claimed, passed through the send gate, sent over
  the pooled connections and recorded one by one (SQLite, one process);
- the transport alone in the same run: the same messages straight through the
  pooled deliverer, no database;
- the ceiling for that delay: connections / delay (a slow provider can go no
  faster than that; the outbox should come close, and never send more);
- what the sink received: exactly the messages queued (no repeats).

The sink runs in its own process so it does not share the sender's interpreter
lock. TOUCHFLOW_BENCH_SMTP_POOL sets the pool size (default 4, as SMTP_POOL_SIZE).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import insert

from backend.db import create_engine, create_sessionmaker
from backend.models import OutboxMessage
from backend.settings import Settings
from nodes.sdk import NodeRegistry, SystemClock
from runtime.delivery import Outgoing
from runtime.delivery.email import EmailDeliverer
from runtime.engine import Runtime
from runtime.messaging.gate import GatedDeliverer, GatePolicy
from runtime.messaging.links import LinkSigner
from tests.support.net import free_port as _free_port
from tests.support.stores import fresh_database

POOL = int(os.environ.get("TOUCHFLOW_BENCH_SMTP_POOL", "4"))
# Messages per run, so each run takes a few seconds at its delay.
RUNS = ((0.0, 1000), (0.05, 240), (0.6, 32))
HTML = '<p>Hej Anna!</p><p><a href="https://shop.test/guide">Get the guide</a></p>'


class Sink:
    def __init__(self, delay: float, count: Any) -> None:
        self.delay = delay
        self.count = count

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.count.get_lock():
            self.count.value += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 OK"


def _serve(port: int, delay: float, ready: Any, stop: Any, received: Any) -> None:
    controller = Controller(
        Sink(delay, received), hostname="127.0.0.1", port=port, enable_SMTPUTF8=True
    )
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


def _payload(n: int) -> dict[str, Any]:
    # A third of the addresses are Swedish, as in the demo: they go with SMTPUTF8.
    to = f"anna.sjöberg.{n}@example.com" if n % 3 == 0 else f"c{n}@example.com"
    return {"to": to, "subject": "Nyheter", "text": "Hej", "html": HTML}


def _deliverer(port: int) -> EmailDeliverer:
    links = LinkSigner(secret="bench", base_url="http://touchflow.test")
    return EmailDeliverer(
        hostname="127.0.0.1", port=port, sender="hi@shop.test", pool_size=POOL, links=links
    )


async def _transport(port: int, count: int) -> float:
    deliverer = _deliverer(port)
    gate = asyncio.Semaphore(POOL)
    prefix = secrets.token_hex(4)

    async def one(n: int) -> None:
        message = Outgoing(
            id=n, idempotency_key=f"{prefix}-{n}", channel="email", payload=_payload(n)
        )
        async with gate:
            await deliverer.deliver(message)

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    elapsed = time.perf_counter() - started
    await deliverer.aclose()
    return count / elapsed


async def _outbox(url: str, port: int, count: int) -> float:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=url,
        secret_key="bench",
        smtp_pool_size=POOL,
    )
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    clock = SystemClock()
    email = _deliverer(port)
    rt = Runtime(
        sessions=sessions,
        registry=NodeRegistry(),
        settings=settings,
        clock=clock,
        deliverers={
            "email": GatedDeliverer(email, sessions, clock, GatePolicy.from_settings(settings))
        },
    )
    prefix = secrets.token_hex(4)
    now = clock.now()
    async with sessions() as session, session.begin():
        await session.execute(
            insert(OutboxMessage),
            [
                {
                    "idempotency_key": f"{prefix}-{n}",
                    "channel": "email",
                    "category": "transactional",
                    "payload": _payload(n),
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for n in range(count)
            ],
        )
    started = time.perf_counter()
    report = await rt.drain()
    elapsed = time.perf_counter() - started
    await email.aclose()
    await engine.dispose()
    assert report.sent == count, report
    return count / elapsed


async def _run(url: str, port: int, delay: float, count: int) -> tuple[float, float]:
    outbox = await _outbox(url, port, count)
    transport = await _transport(port, count)
    return outbox, transport


def main() -> None:
    print(f"{POOL} pooled SMTP connections, tracking + unsubscribe links, 1/3 SMTPUTF8")
    with tempfile.TemporaryDirectory() as tmp:
        for delay, count in RUNS:
            port = _free_port()
            ready, stop, received = mp.Event(), mp.Event(), mp.Value("i", 0)
            server = mp.Process(target=_serve, args=(port, delay, ready, stop, received))
            server.start()
            try:
                ready.wait(30)
                outbox, transport = asyncio.run(_measure(Path(tmp), port, delay, count))
            finally:
                stop.set()
                server.join(30)
            ceiling = f"{POOL / delay:8.0f}" if delay else "       -"
            print(f"  sink {delay * 1000:4.0f} ms/message, {count} messages:")
            print(f"    outbox (gate, ledger, per-message commits): {outbox:8.0f} emails/s")
            print(f"    transport alone (no database):              {transport:8.0f} emails/s")
            print(f"    ceiling ({POOL} connections / delay):          {ceiling} emails/s")
            print(f"    outbox / transport: {outbox / transport:.2f}")
            print(f"    the sink received {received.value} emails for {2 * count} sent")


async def _measure(tmp: Path, port: int, delay: float, count: int) -> tuple[float, float]:
    directory = tmp / f"db-{port}"
    directory.mkdir()
    async with fresh_database("sqlite", directory) as url:
        return await _run(url, port, delay, count)
