"""The Runs list on 20,000 and 200,000 journeys: keyset pages against the old OFFSET pages.

For each size, on SQLite and PostgreSQL, the median of a few rounds of: the
first page (failed and stuck first), a page 90 % of the way down (by its
keyset cursor), one flow's failed runs, the capped count, and, as the
ceiling measured in the same run, the page at the same depth by OFFSET with
the full count the list used before. The ratio of the large size to the
small shows what grows with the table. Prints a table; asserts nothing.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from backend.db import create_engine, create_sessionmaker
from backend.flows.runfilter import RunFilter, attention, filter_conditions
from backend.flows.runlist import REST, Cursor, count_runs, runs_page
from backend.models import Flow, FlowVersion, Journey, utcnow
from tests.support.stores import fresh_database

SIZES = (20_000, 200_000)
ROUNDS = 3
PAGE = 25
FLOWS = 5


async def _populate(url: str, size: int, start: int) -> int:
    """Add journeys up to ``size`` in all; returns the first flow's id."""
    engine = create_engine(url)
    now = utcnow()
    async with create_sessionmaker(engine)() as db, db.begin():
        flow_ids = list(await db.scalars(select(Flow.id).order_by(Flow.id)))
        if not flow_ids:
            for n in range(FLOWS):
                flow = Flow(name=f"Flöde {n}", status="active", draft_graph={})
                db.add(flow)
                await db.flush()
                db.add(FlowVersion(flow_id=flow.id, number=1, graph={}))
                flow_ids.append(flow.id)
            await db.flush()
        rows = await db.execute(select(FlowVersion.flow_id, FlowVersion.id))
        versions = {row.flow_id: row.id for row in rows}
        batch = []
        for n in range(start, size):
            flow_id = flow_ids[n % FLOWS]
            status = "failed" if n % 100 == 0 else "active" if n % 200 == 1 else "completed"
            entered = now - timedelta(minutes=n * 525_600 // size)
            batch.append(
                {
                    "flow_id": flow_id,
                    "flow_version_id": versions[flow_id],
                    "node_id": f"n{n % 7}",
                    "visits": {},
                    "data": {},
                    "status": status,
                    "attempts": 0,
                    "last_error": "SMTP 550" if status == "failed" else None,
                    # One in two active runs is overdue: stuck.
                    "due_at": now - timedelta(hours=n % 2) if status == "active" else None,
                    "entered_at": entered,
                    "updated_at": entered,
                }
            )
            if len(batch) == 10_000:
                await db.execute(insert(Journey), batch)
                batch = []
        if batch:
            await db.execute(insert(Journey), batch)
    await engine.dispose()
    return flow_ids[0]


async def _median(work: Callable[[], Awaitable[Any]]) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        await work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def _measure(url: str, size: int, flow_id: int) -> dict[str, float]:
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    now = utcnow()
    first_part = attention(now, set())
    async with sessions() as db:
        everything = await filter_conditions(db, RunFilter(), now, set())
        failed_of_flow = await filter_conditions(
            db, RunFilter(flow_id=flow_id, status="failed"), now, set()
        )
        depth = size * 9 // 10
        deep = (
            await db.execute(
                select(Journey.entered_at, Journey.id)
                .order_by(Journey.entered_at.desc(), Journey.id.desc())
                .offset(depth)
                .limit(1)
            )
        ).one()
        cursor = Cursor(REST, deep.entered_at, deep.id)

        async def offset_page() -> None:
            # The list before keyset paging: a full count and an OFFSET page.
            await db.scalar(select(func.count()).select_from(Journey))
            await db.execute(
                select(Journey)
                .order_by(Journey.updated_at.desc(), Journey.id.desc())
                .limit(PAGE)
                .offset(depth)
            )

        figures = {
            "first": await _median(lambda: runs_page(db, everything, first_part, PAGE, None)),
            "deep": await _median(lambda: runs_page(db, everything, first_part, PAGE, cursor)),
            "flow+failed": await _median(
                lambda: runs_page(db, failed_of_flow, first_part, PAGE, None)
            ),
            "count": await _median(lambda: count_runs(db, everything)),
            "offset (old)": await _median(offset_page),
        }
    await engine.dispose()
    return figures


async def _run() -> None:
    columns = ("first", "deep", "flow+failed", "count", "offset (old)")
    print(f"{'database':<11}{'runs':>9}" + "".join(f"{c + ' ms':>16}" for c in columns))
    for kind in ("sqlite", "postgresql"):
        with tempfile.TemporaryDirectory() as tmp:
            async with fresh_database(kind, Path(tmp)) as url:
                results = []
                start = 0
                for size in SIZES:
                    flow_id = await _populate(url, size, start)
                    start = size
                    figures = await _measure(url, size, flow_id)
                    results.append(figures)
                    print(
                        f"{kind:<11}{size:>9}"
                        + "".join(f"{figures[c] * 1000:>16.1f}" for c in columns)
                    )
                small, large = results[0], results[-1]
                print(
                    f"{kind:<11} {SIZES[-1]}/{SIZES[0]} runs: "
                    + ", ".join(f"{c} x{large[c] / small[c]:.1f}" for c in columns)
                    + f"; deep keyset page vs old OFFSET page: "
                    f"{large['offset (old)'] / large['deep']:.0f}x faster"
                )


def main() -> None:
    asyncio.run(_run())
