"""The conversion page's figures and the flow-goal check on flows of 1,000 to 50,000 journeys.

Each journey of an email-against-SMS split flow ran three steps; 15 % of the
customers bought (a ``purchase`` event) within the goal's window, and the
conversions of the goal check are what the page then counts. For each size, on
SQLite and PostgreSQL: the first flow-goal check (``record_flow_goals``, every
journey still to look at), a second one (nothing new: the steady state), and
the median of a few loads of the page's figures (``flow_conversion``). The
ratio of the largest size to the smallest shows how the work grows with the
flow. Prints a table; asserts nothing.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, select

from backend.db import create_engine, create_sessionmaker
from backend.flows.conversion import flow_conversion
from backend.models import Contact, Event, Journey, Step, utcnow
from runtime import flows
from runtime.conversions import record_flow_goals
from tests.backend.web.test_conversion import graph, registry
from tests.support.stores import fresh_database

SIZES = (1_000, 10_000, 50_000)
ROUNDS = 3
CHUNK = 5_000


async def _populate(url: str, size: int) -> int:
    engine = create_engine(url)
    now = utcnow()
    entered = now - timedelta(days=3)
    async with create_sessionmaker(engine)() as db, db.begin():
        flow = await flows.create_flow(db, f"Kampanj {size}", graph=graph())
        version = await flows.publish(db, flow.id, registry())
        first = (await db.scalar(select(Contact.id).order_by(Contact.id.desc()).limit(1))) or 0
        for start in range(0, size, CHUNK):
            count = min(CHUNK, size - start)
            await db.execute(
                insert(Contact),
                [{"email": f"b{size}-{start + n}@example.test"} for n in range(count)],
            )
        contacts = list(
            (
                await db.execute(select(Contact.id).where(Contact.id > first).order_by(Contact.id))
            ).scalars()
        )
        for start in range(0, size, CHUNK):
            part = contacts[start : start + CHUNK]
            ids = (
                await db.execute(
                    insert(Journey).returning(Journey.id),
                    [
                        {
                            "flow_id": flow.id,
                            "flow_version_id": version.id,
                            "contact_id": c,
                            "status": "completed",
                            "node_id": "mail",
                            "entered_at": entered,
                        }
                        for c in part
                    ],
                )
            ).scalars()
            steps = []
            for n, journey_id in enumerate(ids):
                port, action = ("a", "mail") if n % 2 else ("b", "text")
                for node_id, out in (("start", "next"), ("ab", port), (action, "next")):
                    steps.append(
                        {
                            "journey_id": journey_id,
                            "node_id": node_id,
                            "visit": 1,
                            "node_type": "x",
                            "status": "done",
                            "port": out,
                            "started_at": entered,
                        }
                    )
            await db.execute(insert(Step), steps)
            await db.execute(
                insert(Event),
                [
                    {
                        "type": "purchase",
                        "contact_id": c,
                        "occurred_at": entered + timedelta(days=1),
                    }
                    for n, c in enumerate(part)
                    if n % 20 < 3
                ],
            )
    await engine.dispose()
    return flow.id


async def _time(url: str, flow_id: int) -> tuple[float, float, float]:
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    checks = []
    for _ in range(2):
        async with sessions() as db, db.begin():
            started = time.perf_counter()
            await record_flow_goals(db, utcnow())
            checks.append(time.perf_counter() - started)
    pages = []
    for _ in range(ROUNDS):
        async with sessions() as db:
            flow = await flows.get_flow(db, flow_id)
            started = time.perf_counter()
            await flow_conversion(db, flow_id, flow.published_version_id, registry())
            pages.append(time.perf_counter() - started)
    await engine.dispose()
    return checks[0], checks[1], statistics.median(pages)


async def _run() -> None:
    print(f"{'database':<11}{'journeys':>9}{'1st check ms':>14}{'2nd check ms':>14}{'page ms':>9}")
    for kind in ("sqlite", "postgresql"):
        with tempfile.TemporaryDirectory() as tmp:
            async with fresh_database(kind, Path(tmp)) as url:
                first: tuple[float, float, float] | None = None
                last = (0.0, 0.0, 0.0)
                for size in SIZES:
                    flow_id = await _populate(url, size)
                    last = await _time(url, flow_id)
                    first = first or last
                    print(
                        f"{kind:<11}{size:>9}{last[0] * 1000:>14.1f}{last[1] * 1000:>14.1f}"
                        f"{last[2] * 1000:>9.1f}"
                    )
                assert first is not None
                print(
                    f"{kind:<11} {SIZES[-1]}/{SIZES[0]} journeys: first check "
                    f"x{last[0] / first[0]:.1f}, page x{last[2] / first[2]:.1f} "
                    f"(journeys x{SIZES[-1] / SIZES[0]:.0f})"
                )


def main() -> None:
    asyncio.run(_run())
