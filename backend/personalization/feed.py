"""Telling every process which visitors' remembered decisions changed (Redis pub/sub).

Each web process keeps visitors' decision state in memory (``recent.py``). A
change committed in one process (a worker delivering content, another web
process stitching or erasing, a marketer's edit) is published on one channel;
every web process listens and drops what it names, so the memory can be kept
for longer than a change may take to show.

Pub/sub delivers at most once: a process that was not listening (Redis
restarting, the connection dropped) forgets everything when it subscribes
again, and the memory's own expiry bounds what a lost message can leave stale.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = ["CHANNEL", "Apply", "ChangeFeed"]

log = logging.getLogger("touchflow.personalization")
CHANNEL = "touchflow:visitors-changed"
RECONNECT_SECONDS = 1.0

# (visitor ids, contact ids, everything) -> drop them from this process's memory
Apply = Callable[[Sequence[str], Sequence[int], bool], None]


class ChangeFeed:
    """Publishes this process's changes and applies the others' (connects on first use)."""

    def __init__(self, redis_url: str, channel: str = CHANNEL) -> None:
        self._url = redis_url
        self._channel = channel
        self._redis: Redis | None = None
        self._sender = secrets.token_hex(8)  # its own messages are applied already
        self._sending: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._warned = False

    def _client(self) -> Redis:
        if self._redis is None:
            self._redis = Redis.from_url(self._url)
        return self._redis

    def publish(
        self, visitor_ids: Sequence[str], contact_ids: Sequence[int], everything: bool = False
    ) -> None:
        """Tell the other processes, in the background (called after a commit)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): nothing to tell it with
            return
        message = json.dumps(
            {
                "from": self._sender,
                "v": list(visitor_ids),
                "c": list(contact_ids),
                "all": everything,
            }
        )
        task = loop.create_task(self._publish(message))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _publish(self, message: str) -> None:
        try:
            await self._client().publish(self._channel, message)
        except (RedisError, OSError) as exc:
            if not self._warned:
                log.warning("cannot tell other processes of a visitor change: %s", exc)
            self._warned = True
            return
        self._warned = False

    def listen(self, apply: Apply) -> None:
        """Apply the other processes' changes from now on (a background task)."""
        self._listener = asyncio.get_running_loop().create_task(self._listen(apply))

    async def _listen(self, apply: Apply) -> None:
        while True:
            pubsub = self._client().pubsub()
            try:
                await pubsub.subscribe(self._channel)
                apply((), (), True)  # whatever was published while not listening
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    data = json.loads(message["data"])
                    if data.get("from") != self._sender:
                        apply(data.get("v") or (), data.get("c") or (), bool(data.get("all")))
            except (RedisError, OSError, ValueError) as exc:
                log.warning("not hearing other processes' visitor changes, retrying: %s", exc)
                await asyncio.sleep(RECONNECT_SECONDS)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await asyncio.gather(*self._sending, return_exceptions=True)
        if self._redis is not None:
            await self._redis.aclose()
