"""A rate limit shared by every web process that costs the request no Redis round trip.

The snippet's endpoints are the hottest public calls: awaiting Redis on each
one cost decide over a third of its throughput. So each process keeps a local
allowance per key and window, and *reserves* it from the shared counter in
blocks: a key's first block is handed out at once and counted in Redis by a
background flush (one Lua script call for every key that needs it,
some milliseconds later); the next block is reserved when half of the current one
is used. Only a key that runs through its block before Redis answered waits,
for that one flush.

Redis holds the truth per key and fixed window (``INCRBY`` of the block; the
key expires with its window): when it says the window's budget is spent, every process refuses
the key until the window ends, and a partly granted block shrinks to what was
left. The overshoot is bounded: at most one block per process per key and
window, which for the per-visitor limit (120 a minute, blocks of 12) is small
beside the limit. If Redis fails, blocks are granted locally, so the limits
fall back to per process (snippet limits stop floods; refusing every page view
while Redis is down would be worse).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from backend.ratelimit import Limit

__all__ = ["ReservingRateLimiter", "block_size"]

log = logging.getLogger("touchflow.ratelimit")
# How long a flush waits to gather more reservations into its one command.
FLUSH_DELAY_SECONDS = 0.02
MAX_KEYS = 100_000


# Reserve ARGV[2i-1] of budget under KEYS[i] (expiring after ARGV[2i] seconds, set when
# the window's key is made); returns each key's total after its reservation.
_RESERVE = """
local totals = {}
for i, key in ipairs(KEYS) do
  local amount = tonumber(ARGV[2 * i - 1])
  local total = redis.call('INCRBY', key, amount)
  if total == amount then
    redis.call('EXPIRE', key, ARGV[2 * i])
  end
  totals[i] = total
end
return totals
"""


def block_size(limit: Limit) -> int:
    """A tenth of the limit, between 1 and 1,000: few round trips, a small overshoot."""
    return max(1, min(limit.count // 10, 1000))


@dataclass
class _Window:
    """One key's window as this process sees it."""

    window: int
    seconds: int
    count: int  # the limit
    left: int  # admissions this process may still make in the window
    handed: int  # admissions this process was given in the window (granted or assumed)
    asked: bool = False  # a reservation is queued or in flight
    spent: bool = False  # Redis said the window's budget is gone


class ReservingRateLimiter:
    """``RateLimiter`` with shared counters in Redis and local decisions (see the module)."""

    def __init__(
        self,
        redis: Redis,
        prefix: str = "touchflow:rlb:",
        timer: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._timer = timer
        self._windows: dict[str, _Window] = {}
        self._queue: dict[str, tuple[_Window, int, bool]] = {}  # key: (window, amount, first)
        self._wake = asyncio.Event()
        self._flushed: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._reserve = redis.register_script(_RESERVE)

    async def hit(self, key: str, limit: Limit) -> float | None:
        """Count a hit; seconds to wait if over the limit, None if allowed."""
        now = self._timer()
        window = int(now // limit.seconds)
        state = self._windows.get(key)
        if state is None or state.window != window:
            state = self._start(key, window, limit)
        while state.left <= 0 and not state.spent:
            # Ran through the block before Redis answered: wait for a reservation.
            if not state.asked:
                self._ask(key, state, block_size(limit), first=False)
            await self._next_flush()
        if state.left <= 0:
            return (window + 1) * limit.seconds - now
        state.left -= 1
        block = block_size(limit)
        if state.left <= block // 2 and not state.asked and not state.spent:
            self._ask(key, state, block, first=False)
        return None

    async def close(self) -> None:
        """Stop the background flush (its queued reservations are dropped)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _start(self, key: str, window: int, limit: Limit) -> _Window:
        if len(self._windows) >= MAX_KEYS and key not in self._windows:
            # Past windows are worthless; dropping them bounds memory under key floods.
            self._windows = {
                k: w
                for k, w in self._windows.items()
                if w.window == int(self._timer() // w.seconds)
            }
        block = block_size(limit)
        state = _Window(window, limit.seconds, limit.count, left=block, handed=block)
        self._windows[key] = state
        self._ask(key, state, block, first=True)
        return state

    def _ask(self, key: str, state: _Window, amount: int, *, first: bool) -> None:
        state.asked = True
        self._queue[f"{key}:{state.window}"] = (state, amount, first)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _next_flush(self) -> None:
        if self._flushed is None or self._flushed.done():
            self._flushed = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._flushed)

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(FLUSH_DELAY_SECONDS)
            self._wake.clear()
            queued, self._queue = self._queue, {}
            await self._flush(queued)
            waiting, self._flushed = self._flushed, None
            if waiting is not None and not waiting.done():
                waiting.set_result(None)

    async def _flush(self, queued: dict[str, tuple[_Window, int, bool]]) -> None:
        if not queued:
            return
        keys = [self._prefix + name for name in queued]
        args: list[int] = []
        for state, amount, _first in queued.values():
            args += [amount, state.seconds + 1]
        try:
            # One command for the whole batch, however many keys: a pipeline's cost
            # per key (two commands each) showed up in decide's profile.
            replies = await self._reserve(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            if not self._failing:
                log.warning("shared rate limits unavailable, counting per process: %s", exc)
            self._failing = True
            for state, amount, first in queued.values():
                # This process's own count is all there is: at most the limit, per process.
                state.asked = False
                if not first:
                    granted = max(0, min(amount, state.count - state.handed))
                    state.left += granted
                    state.handed += granted
                    state.spent = granted < amount
            return
        self._failing = False
        for (state, amount, first), total in zip(queued.values(), replies, strict=True):
            before = int(total) - amount
            granted = max(0, min(amount, state.count - before))
            state.asked = False
            if granted < amount:
                state.spent = True
            # A first block was handed out already: take back what Redis did not grant.
            if first:
                state.left = max(0, state.left - (amount - granted))
                state.handed -= amount - granted
            else:
                state.left += granted
                state.handed += granted
