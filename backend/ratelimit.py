"""Fixed-window rate limits for public endpoints (forms, the web snippet, inbound hooks).

With Redis configured the counters are shared by every web process (INCR with
an expiry); without it they live in the process, which is exact for the
single-process laptop setup.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis


@dataclass(frozen=True)
class Limit:
    """At most ``count`` hits per ``seconds`` for one key."""

    count: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> Limit:
        """``"10/minute"`` (second, minute, hour or day) as a Limit; ValueError otherwise."""
        found = _LIMIT.fullmatch(text.strip().lower())
        if found is None or int(found["count"]) < 1:
            raise ValueError(
                f"a rate limit looks like '10/minute' (second, minute, hour or day), not {text!r}"
            )
        return cls(count=int(found["count"]), seconds=_PERIODS[found["period"]])


_LIMIT = re.compile(r"(?P<count>\d+)\s*/\s*(?P<period>second|minute|hour|day)")
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86_400}


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: Limit) -> float | None:
        """Count a hit; return seconds to wait if over the limit, None if allowed."""


class MemoryRateLimiter:
    def __init__(self, max_keys: int = 100_000) -> None:
        self._windows: dict[str, tuple[int, int]] = {}
        self._max_keys = max_keys

    async def hit(self, key: str, limit: Limit) -> float | None:
        now = time.time()
        window = int(now // limit.seconds)
        start, count = self._windows.get(key, (window, 0))
        if start != window:
            start, count = window, 0
        count += 1
        if len(self._windows) >= self._max_keys and key not in self._windows:
            # Old windows are worthless; dropping them bounds memory under key floods.
            self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
        self._windows[key] = (start, count)
        if count > limit.count:
            return (window + 1) * limit.seconds - now
        return None


class RedisRateLimiter:
    def __init__(self, redis: Redis, prefix: str = "touchflow:rl:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def hit(self, key: str, limit: Limit) -> float | None:
        now = time.time()
        window = int(now // limit.seconds)
        name = f"{self._prefix}{key}:{window}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, limit.seconds + 1)
            count, _ = await pipe.execute()
        if int(count) > limit.count:
            return (window + 1) * limit.seconds - now
        return None
