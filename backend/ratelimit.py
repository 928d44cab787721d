"""Fixed-window rate limits for public endpoints (forms, the web snippet, inbound hooks),
and the client address they count by (forwarded headers from trusted proxies only).

With Redis configured the counters are shared by every web process (INCR with
an expiry); without it they live in the process, which is exact for the
single-process laptop setup.
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass
from typing import Protocol

from litestar.datastructures import Headers
from litestar.enums import ScopeType
from litestar.middleware import MiddlewareProtocol
from litestar.types import ASGIApp, Receive, Scope, Send
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


class TrustedProxies:
    """Who may tell us the client's address: ``TRUSTED_PROXIES`` (addresses, CIDR ranges).

    Behind a reverse proxy every request comes from the proxy, which names the
    real client in ``X-Forwarded-For``. Anyone can send that header, so it is
    believed only from a listed proxy; otherwise per-address limits (sign-in,
    forms) could be dodged by inventing a new address for every request.
    """

    def __init__(self, setting: str) -> None:
        self.networks = [
            ipaddress.ip_network(item.strip(), strict=False)
            for item in setting.split(",")
            if item.strip()
        ]

    def trusts(self, address: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client's address: the peer, or the nearest untrusted hop a trusted peer names."""
        if not forwarded_for or not self.trusts(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        # Read from the right: each trusted proxy appended the address it saw.
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer


class ProxyHeadersMiddleware(MiddlewareProtocol):
    """Sets the request's client address and scheme from a trusted proxy's headers only."""

    def __init__(self, app: ASGIApp, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and self.proxies.networks:
            client = scope.get("client")
            peer = client[0] if client else None
            if self.proxies.trusts(peer):
                headers = Headers.from_scope(scope)
                address = self.proxies.client(peer, headers.get("x-forwarded-for"))
                if address and address != peer:
                    scope["client"] = (address, 0)
                proto = (headers.get("x-forwarded-proto") or "").split(",")[0].strip().lower()
                if proto in ("http", "https"):
                    scope["scheme"] = proto
        await self.app(scope, receive, send)
