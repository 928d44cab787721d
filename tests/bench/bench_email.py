"""Emails/s to a local SMTP sink (aiosmtpd on loopback): pooled connections vs one per message.

Both runs send the same messages in the same process, with the outbox's
delivery concurrency, so the figures compare the transport only.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import socket
import time
from typing import Any

from aiosmtpd.controller import Controller

from runtime.delivery import Outgoing
from runtime.delivery.email import EmailDeliverer
from runtime.messaging.links import LinkSigner
from runtime.outbox import CONCURRENCY

MESSAGES = 1000


class Sink:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _messages(prefix: str) -> list[Outgoing]:
    html = '<p>Hello!</p><p><a href="https://shop.test/guide">Get the guide</a></p>'
    return [
        Outgoing(
            id=n,
            idempotency_key=f"{prefix}-{n}",
            channel="email",
            payload={"to": f"c{n}@example.test", "subject": "News", "text": "Hello", "html": html},
            contact_id=n,
        )
        for n in range(MESSAGES)
    ]


async def _run(deliverer: EmailDeliverer, prefix: str, concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(message: Outgoing) -> None:
        async with gate:
            await deliverer.deliver(message)

    messages = _messages(prefix)
    started = time.perf_counter()
    await asyncio.gather(*(one(m) for m in messages))
    elapsed = time.perf_counter() - started
    await deliverer.aclose()
    return MESSAGES / elapsed


async def _bench(port: int) -> None:
    links = LinkSigner(secret="bench", base_url="http://touchflow.test")
    common: dict[str, Any] = {"hostname": "127.0.0.1", "port": port, "sender": "hi@shop.test"}
    print(f"{MESSAGES} marketing emails (tracking + unsubscribe) per run")
    for concurrency in (1, CONCURRENCY):
        size = concurrency  # as many connections as messages in flight: a like-for-like race
        pooled_deliverer = EmailDeliverer(**common, pool_size=size, links=links)
        pooled = await _run(pooled_deliverer, f"p{concurrency}", concurrency)
        opened = pooled_deliverer.pool.connections_opened if pooled_deliverer.pool else 0
        single = await _run(
            EmailDeliverer(**common, pool_size=0, links=links), f"s{concurrency}", concurrency
        )
        print(f"  {concurrency:2d} at a time:")
        print(f"    pooled ({opened} connections opened): {pooled:8.0f} emails/s")
        print(f"    one connection per message:   {single:8.0f} emails/s")
        print(f"    pooled / per-message: {pooled / single:.1f}x")


def _serve(port: int, ready: Any, stop: Any, received: Any) -> None:
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()
    received.value = sink.count


def main() -> None:
    # The sink runs in its own process so it does not share the sender's interpreter lock.
    port = _free_port()
    ready, stop, received = mp.Event(), mp.Event(), mp.Value("i", 0)
    server = mp.Process(target=_serve, args=(port, ready, stop, received))
    server.start()
    try:
        ready.wait(30)
        asyncio.run(_bench(port))
    finally:
        stop.set()
        server.join(30)
    print(f"  the sink received {received.value} emails")
