"""The supervised arq worker (``runtime.executor.supervise.serve``) outlives Redis going away at
the worst moment: between a WATCH and the command after it.

arq's enqueue (the cron sweep) and job start WATCH a key and then read it. When Redis dies in
between, redis-py reports not a ConnectionError but a WatchError ("A ConnectionError occurred on
while watching one or more keys", raised while handling "Connection closed by server."); a
supervisor that only knew connection errors let it end the worker. A loopback TCP proxy in front
of a real redis-server goes down right after passing on a WATCH reply, so the outage hits that
moment every time; then Redis is restarted and the same worker takes jobs from it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path

import pytest
from arq.connections import RedisSettings, create_pool

from runtime.engine import Runtime
from runtime.executor.arq_worker import JOB_NAME
from runtime.executor.supervise import serve
from tests.runtime.delivery.processes import start_redis, wait_until
from tests.runtime.test_arq import _signups
from tests.support.net import loopback_socket, port_of
from tests.support.smtp import Mailbox


class RedisGoesDownAfterWatch:
    """A loopback proxy to Redis that, once armed, drops every connection and stops listening
    right after forwarding the reply to a WATCH (so the watching client's next command fails)."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.sock = loopback_socket()
        self.port = port_of(self.sock)
        self.armed = True
        self.down = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        if self._server is None:  # the first time: the socket bound in __init__
            self._server = await asyncio.start_server(self._pipe, sock=self.sock)
        else:  # back up on the same port
            self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def _pipe(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        redis_r, redis_w = await asyncio.open_connection("127.0.0.1", self.redis_port)
        self._open.update((client_w, redis_w))
        watching = False

        async def upstream() -> None:
            nonlocal watching
            while data := await client_r.read(65536):
                watching = watching or (self.armed and b"\r\nWATCH\r\n" in data.upper())
                redis_w.write(data)
                await redis_w.drain()

        async def downstream() -> None:
            while data := await redis_r.read(65536):
                client_w.write(data)
                await client_w.drain()
                if watching:  # the WATCH is answered: now Redis goes away
                    self.go_down()
                    return

        # Either side ends (or fails) when the proxy goes down: then both sockets close.
        await asyncio.gather(upstream(), downstream(), return_exceptions=True)
        for writer in (client_w, redis_w):
            writer.close()
            self._open.discard(writer)

    def go_down(self) -> None:
        self.armed = False
        assert self._server is not None
        self._server.close()
        for writer in self._open:
            writer.close()
        self._open.clear()
        self.down.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._open:
            writer.close()


async def test_a_worker_outlives_redis_dying_between_watch_and_read(
    runtime: Runtime,
    mailbox: Mailbox,
    queue_name: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="runtime.executor.supervise")
    redis, redis_port = start_redis(tmp_path)
    proxy = RedisGoesDownAfterWatch(redis_port)
    await proxy.start()
    rt = runtime
    rt.settings = rt.settings.model_copy(
        update={
            "redis_url": f"redis://127.0.0.1:{proxy.port}/0",
            "queue_name": queue_name,
            "sweep_interval_seconds": 30,
        }
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(serve(rt.settings, rt, stop=stop))
    try:
        # The cron sweep's enqueue at start-up WATCHes its job key: Redis dies right after.
        await wait_until(lambda: proxy.down.is_set() or worker.done(), timeout=20, what="WATCH")
        assert proxy.down.is_set()
        redis.kill()
        redis = start_redis(tmp_path, redis_port)[0]
        await proxy.start()

        def back() -> bool:
            return worker.done() or "Redis is back" in caplog.text

        await wait_until(back, timeout=20, what="the worker to reconnect")
        assert not worker.done(), worker.exception()
        assert caplog.text.count("Redis is unreachable") == 1

        # The same worker takes jobs from the restarted Redis again.
        await _signups(rt, 3)
        pool = await create_pool(RedisSettings.from_dsn(f"redis://127.0.0.1:{redis_port}/0"))
        try:
            await pool.enqueue_job(JOB_NAME, _queue_name=queue_name)

            async def worked() -> bool:
                sent = len(mailbox.messages) >= 3
                return worker.done() or (sent and await pool.zcard(queue_name) == 0)

            await wait_until(worked, timeout=20, what="the job through Redis")
        finally:
            await pool.aclose()
        assert not worker.done(), worker.exception()
        assert Counter(mailbox.subjects()) == {"Hello": 3}
        stop.set()
        await worker  # it stops when told to, and cleanly
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(worker, return_exceptions=True), 60)
        await proxy.close()
        redis.kill()
