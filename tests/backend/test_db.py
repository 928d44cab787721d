"""SQLite as an embedded database: transactions queue for the write lock instead of failing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from backend.db import LaneReentered, create_engine, create_sessionmaker


async def _counter(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        await conn.execute(text("INSERT INTO counter VALUES (0)"))
    await engine.dispose()


async def _read_then_write(sessions: object, rounds: int) -> None:
    for _ in range(rounds):
        async with sessions() as db, db.begin():  # type: ignore[operator]
            # Reads first, writes later. The driver's own deferred BEGIN came only before
            # the UPDATE (the read saw a stale value: lost updates), and a deferred
            # transaction that reads cannot wait for the lock when it writes ("locked").
            n = await db.scalar(text("SELECT n FROM counter"))
            await asyncio.sleep(0.001)
            await db.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})


async def test_read_then_write_transactions_in_one_process_wait_their_turn(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'lane.db'}"
    await _counter(url)
    engine = create_engine(url)
    try:
        sessions = create_sessionmaker(engine)
        await asyncio.gather(*(_read_then_write(sessions, 10) for _ in range(20)))
        async with engine.connect() as conn:
            # No lost update either: each increment saw the one before it.
            assert await conn.scalar(text("SELECT n FROM counter")) == 200
            assert await conn.scalar(text("PRAGMA journal_mode")) == "wal"
    finally:
        await engine.dispose()


async def test_two_engines_on_one_file_wait_for_each_other(tmp_path: Path) -> None:
    """Two engines stand for two processes (web and an import command, say)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'lanes.db'}"
    await _counter(url)
    engines = [create_engine(url), create_engine(url)]
    try:
        await asyncio.gather(
            *(_read_then_write(create_sessionmaker(e), 25) for e in engines for _ in range(3))
        )
        async with engines[0].connect() as conn:
            assert await conn.scalar(text("SELECT n FROM counter")) == 150
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_task_that_holds_the_lane_and_asks_again_fails_at_once(tmp_path: Path) -> None:
    """Instead of waiting for itself until the pool gives up (a minute, then a 500)."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'again.db'}")
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as first:
            await first.execute(text("SELECT 1"))
            async with sessions() as second:
                with pytest.raises(LaneReentered):
                    await second.execute(text("SELECT 1"))
        async with sessions() as again:  # once the first is closed, the lane is free
            assert await again.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()
