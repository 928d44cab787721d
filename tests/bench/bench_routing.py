"""Round-robin turns under contention: how many task assignments a second the routing takes.

Eight workers (and one, for comparison) each take turns among a flow's three
members, every turn its own transaction, on SQLite and PostgreSQL. The ceiling
is measured in the same run: the same number of transactions that only bump
one counter row (no lock of the members, no choice), the least one assignment
could cost. Prints turns per second and the ratio to the ceiling; asserts
nothing (the machine is shared). The turns must come out even: that is printed
too, as the spread between the most and least assigned member.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.db import create_engine, create_sessionmaker
from backend.models import Flow, RoutingMember, User
from runtime.routing import next_member
from tests.support.stores import fresh_database

TURNS = 600
WORKERS = (1, 8)


async def _flow(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as db, db.begin():
        flow = Flow(name="Bänk")
        db.add(flow)
        await db.flush()
        users = await db.execute(
            insert(User).returning(User.id),
            [
                {"email": f"u{n}-{flow.id}@bench.test", "name": f"U{n}", "password_hash": "x"}
                for n in range(3)
            ],
        )
        await db.execute(
            insert(RoutingMember), [{"flow_id": flow.id, "user_id": u} for u in users.scalars()]
        )
        return flow.id


async def _spread(sessions: async_sessionmaker[AsyncSession], flow_id: int) -> int:
    async with sessions() as db:
        counts = list(
            await db.scalars(select(RoutingMember.assigned).where(RoutingMember.flow_id == flow_id))
        )
    return max(counts) - min(counts)


async def _run_workers(workers: int, turn: Callable[[], Awaitable[None]]) -> float:
    per_worker = TURNS // workers

    async def worker() -> None:
        for _ in range(per_worker):
            await turn()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return per_worker * workers / (time.perf_counter() - started)


async def _round(sessions: async_sessionmaker[AsyncSession], kind: str, workers: int) -> None:
    flow_id = await _flow(sessions)

    async def routed() -> None:
        async with sessions() as db, db.begin():
            await next_member(db, flow_id=flow_id)

    async def ceiling() -> None:
        async with sessions() as db, db.begin():
            bump = Flow.draft_revision + 1
            await db.execute(update(Flow).where(Flow.id == flow_id).values(draft_revision=bump))

    floor = await _run_workers(workers, ceiling)
    rate = await _run_workers(workers, routed)
    spread = await _spread(sessions, flow_id)
    print(f"{kind:<11}{workers:>8}{rate:>12.0f}{floor:>14.0f}{rate / floor:>8.2f}{spread:>8}")


async def _measure(url: str, kind: str) -> None:
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    for workers in WORKERS:
        await _round(sessions, kind, workers)
    await engine.dispose()


async def _run() -> None:
    print(
        f"{'database':<11}{'workers':>8}{'turns/s':>12}{'ceiling/s':>14}{'ratio':>8}{'spread':>8}"
    )
    for kind in ("sqlite", "postgresql"):
        with tempfile.TemporaryDirectory() as tmp:
            async with fresh_database(kind, Path(tmp)) as url:
                await _measure(url, kind)


def main() -> None:
    asyncio.run(_run())
