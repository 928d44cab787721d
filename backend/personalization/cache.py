"""What every snippet request needs, held in memory for a few seconds.

Site keys and default rules change rarely and are read on every request, so
each web process keeps them for ``ttl`` seconds: a revoked key or an edited
rule takes effect within that time, and a request costs no table scan. One
refresh runs at a time (a lock) while other requests keep using the previous
answer, so a burst after expiry makes one query and waits for none, and a
flood of made-up keys queues up instead of crowding out the pool.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from backend.auth.keys import normalize_origin
from backend.models import ContentBlock, ContentRule, ContentVariant, SiteKey
from backend.personalization.decide import RuleEntry
from backend.personalization.recent import RecentVisitors, everything_changed
from backend.personalization.visitors import (
    STATE_PARAMS,
    STATE_SQL,
    VisitorState,
    read_visitor,
    visitor_state,
)
from backend.ratebudget import ReservingRateLimiter
from backend.ratelimit import Limit, MemoryRateLimiter, RateLimiter

__all__ = ["Personalizer", "Site"]

# Unknown keys are remembered too (as None), so garbage keys cannot hammer the database;
# past this many entries the cache starts over.
MAX_CACHED_KEYS = 10_000
# Connections of the decision reader; requests beyond this wait in the pool's queue.
READERS = 8


@dataclass(frozen=True)
class Site:
    """A live site key: its id and the origins allowed to use it."""

    id: int
    key: str
    origins: frozenset[str]
    allow_browser_contacts: bool = True

    def allows(self, origin: str | None) -> bool:
        if not origin:
            return False
        if origin in self.origins:  # browsers send origins already in normal form
            return True
        given = normalize_origin(origin)
        return given is not None and given in self.origins


class _ReadOnlyConnection(asyncpg.Connection):  # type: ignore[misc]
    """A decision reader's connection: nothing to reset when it goes back to the pool.

    It only ever runs the visitor read in autocommit (no session settings, locks,
    cursors or listeners), so asyncpg's reset query on release (``RESET ALL``,
    ``UNLISTEN *``, ...) would be a second round trip per decision for nothing.
    """

    def get_reset_query(self) -> str:
        return ""


@dataclass
class Personalizer:
    """Per-process caches and limits for the snippet endpoints (kept in ``app.state``)."""

    sessions: async_sessionmaker[AsyncSession]
    ttl: float = 5.0
    visitor_limit: Limit = field(default_factory=lambda: Limit(count=120, seconds=60))
    key_limit: Limit = field(default_factory=lambda: Limit(count=600_000, seconds=60))
    # Shared by every web process when Redis is configured, without a round trip per
    # request (a Redis call per request cost decide over a third of its throughput):
    # each process reserves blocks of a key's budget (``backend.ratebudget``).
    limiter: RateLimiter = field(default_factory=MemoryRateLimiter)
    timer: Callable[[], float] = time.monotonic
    # The decision read's own small pool (PostgreSQL): autocommit and no ping on
    # checkout, so a decision costs one round trip instead of four (ping, BEGIN,
    # SELECT, ROLLBACK). A dropped connection fails one request and is replaced.
    reader: AsyncEngine | None = None
    # Each visitor's last read, for a few seconds (staleness bound: see recent.py).
    visitors: RecentVisitors = field(default_factory=RecentVisitors)
    _sites: dict[str, tuple[float, Site | None]] = field(default_factory=dict)
    _rules: tuple[float, Mapping[str, tuple[RuleEntry, ...]]] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _raw: asyncpg.Pool | None = None

    @classmethod
    def for_database(
        cls,
        database_url: str,
        sessions: async_sessionmaker[AsyncSession],
        redis: Redis | None = None,
    ) -> Personalizer:
        """The app's personalizer: SQLite shares the app's engine, PostgreSQL gets a reader.

        With ``redis``, the snippet's rate limits are shared by every process.
        """
        limiter: RateLimiter = (
            ReservingRateLimiter(redis) if redis is not None else MemoryRateLimiter()
        )
        if not database_url.startswith("postgresql"):
            return cls(sessions=sessions, limiter=limiter)
        reader = create_async_engine(
            database_url,
            pool_size=READERS,
            max_overflow=0,
            pool_pre_ping=False,
            pool_recycle=600,
            isolation_level="AUTOCOMMIT",
        )
        return cls(sessions=sessions, reader=reader, limiter=limiter)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A connection for the per-request read."""
        bind: AsyncEngine = self.reader or self.sessions.kw["bind"]
        async with bind.connect() as conn:
            yield conn

    async def close(self) -> None:
        if isinstance(self.limiter, ReservingRateLimiter):
            await self.limiter.close()
        if self._raw is not None:
            await self._raw.close()
        if self.reader is not None:
            await self.reader.dispose()

    async def site(self, key: str) -> Site | None:
        """The live site key ``key``, or None when unknown or revoked."""
        cached = self._sites.get(key)
        if cached is not None and (cached[0] > self.timer() or self._lock.locked()):
            return cached[1]  # fresh, or being refreshed right now: the old answer will do
        async with self._lock:
            cached = self._sites.get(key)
            if cached is not None and cached[0] > self.timer():
                return cached[1]
            site = await self._load_site(key)
            if len(self._sites) >= MAX_CACHED_KEYS:
                self._sites.clear()
            self._sites[key] = (self.timer() + self.ttl, site)
            return site

    async def _load_site(self, key: str) -> Site | None:
        async with self.reading() as conn:
            row = (
                await conn.execute(
                    select(
                        SiteKey.id, SiteKey.allowed_origins, SiteKey.allow_browser_contacts
                    ).where(SiteKey.key == key, SiteKey.revoked_at.is_(None))
                )
            ).one_or_none()
        site = None
        if row is not None:
            origins = {normalize_origin(str(o)) for o in row.allowed_origins or []}
            site = Site(
                id=row.id,
                key=key,
                origins=frozenset(o for o in origins if o),
                allow_browser_contacts=bool(row.allow_browser_contacts),
            )
        return site

    async def rules(self) -> Mapping[str, tuple[RuleEntry, ...]]:
        """Enabled rules of live blocks, per slot, in the order they are tried."""
        cached = self._rules
        if cached is not None and (cached[0] > self.timer() or self._lock.locked()):
            return cached[1]
        async with self._lock:
            cached = self._rules
            if cached is not None and cached[0] > self.timer():
                return cached[1]
            loaded = await self._load_rules()
            self._rules = (self.timer() + self.ttl, loaded)
            return loaded

    def forget(self) -> None:
        """Drop everything cached (after a marketer's edit in this process)."""
        self._sites.clear()
        self._rules = None
        everything_changed()  # an assignment shows its variant's current HTML, in every process

    async def visitor(self, visitor_id: str, now: datetime) -> VisitorState:
        """The visitor's state: from the last few seconds' read, else one query."""
        state = self.visitors.get(visitor_id)
        if state is None:
            epoch = self.visitors.epoch
            if self.reader is not None:
                state = await self._read_raw(visitor_id, now)
            else:
                async with self.reading() as conn:
                    state = await read_visitor(conn, visitor_id, now)
            self.visitors.put(visitor_id, state, epoch)
        return state

    async def _read_raw(self, visitor_id: str, now: datetime) -> VisitorState:
        """PostgreSQL: the visitor read straight on an asyncpg pool of its own.

        The decision endpoint's one query, and most of its cost through the ORM
        layers (pool checkout, greenlet, result processing); asyncpg keeps the
        statement prepared per connection.
        """
        if self._raw is None:
            async with self._lock:
                if self._raw is None:
                    assert self.reader is not None
                    url = self.reader.url.set(drivername="postgresql")
                    self._raw = await asyncpg.create_pool(
                        url.render_as_string(hide_password=False),
                        min_size=1,
                        max_size=READERS,
                        connection_class=_ReadOnlyConnection,
                    )
        values = {"vid": visitor_id, "now": now}
        rows = await self._raw.fetch(STATE_SQL, *(values[name] for name in STATE_PARAMS))
        return visitor_state(rows)

    async def _load_rules(self) -> Mapping[str, tuple[RuleEntry, ...]]:
        async with self.reading() as conn:
            rows = await conn.execute(
                select(
                    ContentRule.id,
                    ContentRule.slot,
                    ContentRule.priority,
                    ContentRule.url_pattern,
                    ContentRule.utm_source,
                    ContentRule.audience,
                    ContentVariant.id.label("variant_id"),
                    ContentVariant.key.label("variant_key"),
                    ContentVariant.html,
                    ContentBlock.show_on_claim,
                )
                .join(ContentVariant, ContentVariant.id == ContentRule.variant_id)
                .join(ContentBlock, ContentBlock.id == ContentVariant.block_id)
                .where(ContentRule.enabled.is_(True), ContentBlock.archived_at.is_(None))
                .order_by(ContentRule.slot, ContentRule.priority, ContentRule.id)
            )
            by_slot: dict[str, list[RuleEntry]] = defaultdict(list)
            for row in rows:
                by_slot[row.slot].append(
                    RuleEntry(
                        id=row.id,
                        slot=row.slot,
                        priority=row.priority,
                        url_pattern=row.url_pattern,
                        utm_source=row.utm_source.strip().lower(),
                        audience=row.audience,
                        variant_id=row.variant_id,
                        variant_key=row.variant_key,
                        html=row.html,
                        show_on_claim=bool(row.show_on_claim),
                    )
                )
        return {slot: tuple(entries) for slot, entries in by_slot.items()}
