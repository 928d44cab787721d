"""Database engine and session factory (SQLAlchemy 2, async) for SQLite and PostgreSQL.

SQLite is the embedded default (DESIGN principle 9), and it is made to hold
under a web server, the in-process executor and imports at once:

- WAL, so a reader in another process never blocks the writer;
- every transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock
  up front and waits for it (the busy timeout) instead of starting as a read
  and failing with "database is locked" when it later writes, which SQLite
  cannot wait for;
- one connection per engine, which is one writer lane per process: requests
  and workers queue for it in the event loop (a few milliseconds each) rather
  than race for the file lock.

docs/database.md says what this mode supports and when to move to PostgreSQL.
The runtime owns this recipe; callers create the engine with it and hand the
sessions in (``backend.db`` re-exports it for the web app).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, StaticPool

from runtime.rules.evaluate import SQLITE_FOLD, sql_fold

_decode = msgspec.json.Decoder().decode

# PostgreSQL connections are replaced after this long (idle firewalls and proxies drop older ones).
POOL_RECYCLE_SECONDS = 1800
# How long a SQLite transaction waits for the write lock held by another process.
SQLITE_BUSY_TIMEOUT_SECONDS = 30
# How long a task waits for this process's writer lane before giving up (a stuck
# transaction, never ordinary load: each one holds the lane for milliseconds).
SQLITE_LANE_TIMEOUT_SECONDS = 60


class LaneReentered(RuntimeError):
    """A task that holds the SQLite lane asked for a second connection: it would wait for itself."""


class _WriterLane(AsyncAdaptedQueuePool):
    """The one-connection pool that is SQLite's writer lane, knowing which task holds it.

    A task that already holds the connection and opens a second session would
    wait for itself until the pool timeout; it fails at once instead, naming the
    mistake (end the first transaction before starting another).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._holders: dict[int, asyncio.Task[Any] | None] = {}

    def _do_get(self) -> ConnectionPoolEntry:
        task = _current_task()
        if task is not None and task in self._holders.values():
            raise LaneReentered(
                "this task already holds the SQLite connection: commit or close its "
                "session before opening another"
            )
        record = super()._do_get()
        self._holders[id(record)] = task
        return record

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        self._holders.pop(id(record), None)
        super()._do_return_conn(record)


# SQLAlchemy names a pool's logger after its class, which puts the lane under the
# "runtime" logger the app shows at INFO: every dispose and re-create would be printed.
logging.getLogger(f"{__name__}.{_WriterLane.__name__}").setLevel(logging.WARNING)


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop (a synchronous caller)
        return None


def _is_memory(url: str) -> bool:
    return (
        url.rstrip("/").endswith((":memory:", "sqlite+aiosqlite:", "sqlite:"))
        or "mode=memory" in url
    )


def _sqlite_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if _is_memory(url):
        kwargs.setdefault("poolclass", StaticPool)
    else:
        # The writer lane: one connection, and a queue in front of it.
        kwargs.setdefault("poolclass", _WriterLane)
        kwargs.setdefault("pool_size", 1)
        kwargs.setdefault("max_overflow", 0)
        kwargs.setdefault("pool_timeout", SQLITE_LANE_TIMEOUT_SECONDS)
    engine = create_async_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}, **kwargs
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cur.close()
        # The driver's own implicit BEGIN (deferred, issued before the first
        # write) is turned off; _begin_immediate below starts every transaction.
        dbapi_conn.isolation_level = None
        # Rules fold text with Python's str.lower(); SQLite's lower() is ASCII-only.
        # The adapter's create_function runs on aiosqlite's connection thread.
        dbapi_conn.create_function(SQLITE_FOLD, 1, sql_fold, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def _begin_immediate(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Create an engine with the pragmas/pool settings Touchflow relies on."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    # No ping before each checkout: it is a round trip on every request and
    # step. A connection the server dropped fails its first statement
    # instead; SQLAlchemy then discards every connection older than the
    # failure, so one request per process sees a database restart.
    # Recycling keeps idle connections younger than common proxy timeouts.
    kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault("pool_recycle", POOL_RECYCLE_SECONDS)
    kwargs.setdefault("json_deserializer", json_loads)
    return create_async_engine(url, **kwargs)


def json_loads(text: str) -> Any:
    """``json.loads``, made faster: how the driver reads every JSON column value.

    A claimed batch reads several JSON values per journey (its visits and data, the
    customer's attributes, tags and consent); ``msgspec`` decodes them in about a fifth
    of the time, to the same values. What it refuses and ``json.loads`` reads (a number
    beyond a float's range, which ``jsonb`` keeps, is ``inf`` there) goes to ``json.loads``.
    """
    try:
        return _decode(text)
    except msgspec.MsgspecError:
        return json.loads(text)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """Open a session, commit on success, roll back on error."""
    async with sessions() as session, session.begin():
        yield session
