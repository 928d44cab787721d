"""Rate limits: per key, per window, in memory and shared through Redis."""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from backend.ratelimit import Limit, MemoryRateLimiter, RateLimiter, RedisRateLimiter
from backend.settings import Settings


async def _hits(limiter: RateLimiter, key: str, n: int, limit: Limit) -> list[bool]:
    return [await limiter.hit(key, limit) is None for _ in range(n)]


async def test_memory_limiter_counts_per_key() -> None:
    limiter = MemoryRateLimiter()
    limit = Limit(count=3, seconds=60)
    assert await _hits(limiter, "a", 5, limit) == [True, True, True, False, False]
    assert await _hits(limiter, "b", 1, limit) == [True]
    wait = await limiter.hit("a", limit)
    assert wait is not None and 0 < wait <= 60


async def test_redis_limiter_is_shared_between_instances(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    prefix = f"tf-test-{secrets.token_hex(4)}:"
    try:
        one, two = RedisRateLimiter(client, prefix), RedisRateLimiter(client, prefix)
        limit = Limit(count=2, seconds=60)
        assert await one.hit("visitor", limit) is None
        assert await two.hit("visitor", limit) is None
        assert await one.hit("visitor", limit) is not None
        assert await two.hit("other", limit) is None
    finally:
        keys = [k async for k in client.scan_iter(f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def test_form_rate_limit_setting_is_read_and_a_bad_one_refused() -> None:
    assert Settings(_env_file=None).form_limit == Limit(count=10, seconds=60)  # type: ignore[call-arg]
    three = Settings(form_rate_limit="3 / hour", _env_file=None)  # type: ignore[call-arg]
    assert three.form_limit == Limit(count=3, seconds=3600)
    for wrong in ("10", "ten/minute", "0/minute", "10/fortnight"):
        with pytest.raises(ValidationError, match="10/minute"):
            Settings(form_rate_limit=wrong, _env_file=None)  # type: ignore[call-arg]
