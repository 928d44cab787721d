"""The touchpoint board and the gap analysis on boards of 30, 300 and 1,000 cards.

Each card is linked to a node of one flow whose journeys ran 20 steps per card
in the last 30 days, so the follow-up has real history to count. For each size,
on SQLite and PostgreSQL, the median of a few rounds of: loading the board
(cards, horizons, follow-up of every card) and loading the gap analysis. The
ratio of the largest size to the smallest shows how the work grows with the
board (follow-up is a fixed number of queries, so it grows with the rows, not
with round trips). Prints a table; asserts nothing.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert

from backend.db import create_engine, create_sessionmaker
from backend.lifecycle.board import Filters, load_board
from backend.lifecycle.gaps import load_gaps
from backend.lifecycle.plan import add_process, ensure_workspace, load_plan
from backend.models import Flow, FlowVersion, Journey, Step, Touchpoint, TouchpointLink, utcnow
from tests.support.stores import fresh_database

SIZES = (30, 300, 1000)
ROUNDS = 3
STEPS_PER_CARD = 20


async def _populate(url: str, size: int) -> int:
    engine = create_engine(url)
    now = utcnow()
    async with create_sessionmaker(engine)() as db, db.begin():
        await ensure_workspace(db)
        process = await add_process(db, (await load_plan(db))[0].phase.id, f"Bänk {size}")
        flow = Flow(name=f"Flöde {size}", status="active", draft_graph={})
        db.add(flow)
        await db.flush()
        version = FlowVersion(flow_id=flow.id, number=1, graph={})
        db.add(version)
        await db.flush()
        categories = ("customer", "company", "today")
        cards = [
            {
                "process_id": process.id,
                "title": f"Kort {n}",
                "description": "",
                "category": categories[n % 3],
                "channels": ["email"],
                "audience_text": "",
                "owner": "Åsa",
                "priority": 1 + n % 3,
                "status": "automated" if n % 2 else "planned",
                "decision": "",
                "prioritised_at": now,
                "position": n,
                "revision": 1,
                "created_at": now,
                "updated_at": now,
            }
            for n in range(size)
        ]
        await db.execute(insert(Touchpoint), cards)
        ids = [
            row.id
            for row in (
                await db.execute(
                    Touchpoint.__table__.select().where(Touchpoint.process_id == process.id)
                )
            ).all()
        ]
        await db.execute(
            insert(TouchpointLink),
            [
                {"touchpoint_id": i, "flow_id": flow.id, "node_id": f"n{k}"}
                for k, i in enumerate(ids)
            ],
        )
        journeys = [
            {
                "flow_id": flow.id,
                "flow_version_id": version.id,
                "node_id": "x",
                "visits": {},
                "data": {},
                "status": "completed",
                "attempts": 0,
                "entered_at": now,
                "updated_at": now,
            }
            for _ in range(size * STEPS_PER_CARD)
        ]
        await db.execute(insert(Journey), journeys)
        journey_ids = [
            row.id
            for row in (
                await db.execute(Journey.__table__.select().where(Journey.flow_id == flow.id))
            ).all()
        ]
        await db.execute(
            insert(Step),
            [
                {
                    "journey_id": j,
                    "node_id": f"n{n // STEPS_PER_CARD}",
                    "visit": 1,
                    "node_type": "action.email",
                    "status": "done",
                    "input": {},
                    "output": {},
                    "attempts": 1,
                    "started_at": now - timedelta(days=n % 40),
                }
                for n, j in enumerate(journey_ids)
            ],
        )
    await engine.dispose()
    return process.id


async def _time(url: str, process_id: int) -> tuple[float, float]:
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    board_times, gap_times = [], []
    for _ in range(ROUNDS):
        async with sessions() as db:
            started = time.perf_counter()
            await load_board(db, process_ids=[process_id], filters=Filters(), now=utcnow())
            board_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            await load_gaps(db, total_label="All")
            gap_times.append(time.perf_counter() - started)
    await engine.dispose()
    return statistics.median(board_times), statistics.median(gap_times)


async def _run() -> None:
    print(f"{'database':<11}{'cards':>7}{'steps':>8}{'board ms':>10}{'gaps ms':>9}")
    for kind in ("sqlite", "postgresql"):
        with tempfile.TemporaryDirectory() as tmp:
            async with fresh_database(kind, Path(tmp)) as url:
                first: tuple[float, float] | None = None
                last: tuple[float, float] = (0.0, 0.0)
                for size in SIZES:
                    process_id = await _populate(url, size)
                    board, gaps = await _time(url, process_id)
                    first = first or (board, gaps)
                    last = (board, gaps)
                    print(
                        f"{kind:<11}{size:>7}{size * STEPS_PER_CARD:>8}"
                        f"{board * 1000:>10.1f}{gaps * 1000:>9.1f}"
                    )
                assert first is not None
                print(
                    f"{kind:<11} {SIZES[-1]}/{SIZES[0]} cards: board x{last[0] / first[0]:.1f}, "
                    f"gaps x{last[1] / first[1]:.1f} (cards x{SIZES[-1] / SIZES[0]:.0f})"
                )


def main() -> None:
    asyncio.run(_run())
