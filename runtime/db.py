"""Database engine and session factory (SQLAlchemy 2, async) for SQLite and PostgreSQL.

The runtime owns the engine recipe (pragmas, the rule language's SQLite fold
function); callers create the engine with it and hand the sessions in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from runtime.rules.evaluate import SQLITE_FOLD, sql_fold


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Create an engine with the pragmas/pool settings Touchflow relies on."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets readers run beside the single writer; busy_timeout turns
            # writer contention into waiting instead of "database is locked".
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            # Rules fold text with Python's str.lower(); SQLite's lower() is ASCII-only.
            # The adapter's create_function runs on aiosqlite's connection thread.
            dbapi_conn.create_function(SQLITE_FOLD, 1, sql_fold, deterministic=True)

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """Open a session, commit on success, roll back on error."""
    async with sessions() as session, session.begin():
        yield session
