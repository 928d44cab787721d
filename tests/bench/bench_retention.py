"""Retention: pruning 100,000 old steps and 50,000 old events in batches, on SQLite and PostgreSQL.

A tenth of the steps belong to live journeys and must stay. For each database:
the time ``prune`` takes (batches of 1,000 rows, one transaction each), rows per
second, and, as the ceiling measured in the same run, one set-based DELETE of
the same rows on a fresh copy; then the cost of a run with nothing left to
prune (what the worker pays every retention interval once it has caught up).
Prints a table; asserts nothing.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, insert, select

from backend.db import create_engine, create_sessionmaker
from backend.models import Contact, Event, Flow, FlowVersion, Journey, Step, utcnow
from runtime.models import LIVE_STATUSES
from runtime.retention import RetentionPolicy, prune
from tests.support.stores import fresh_database

JOURNEYS = 1000
STEPS_PER_JOURNEY = 100
EVENTS = 50_000
LIVE_EVERY = 10  # one journey in ten is still waiting: its steps stay
OLD = timedelta(days=400)
POLICY = RetentionPolicy(batch_size=1000)


async def _populate(url: str) -> None:
    engine = create_engine(url)
    old = utcnow() - OLD
    async with create_sessionmaker(engine)() as db, db.begin():
        flow = Flow(name="Bänk", status="active", draft_graph={})
        db.add(flow)
        await db.flush()
        version = FlowVersion(flow_id=flow.id, number=1, graph={})
        db.add(version)
        contact = Contact(email="bank@example.se")
        db.add(contact)
        await db.flush()
        journeys = [
            {
                "flow_id": flow.id,
                "flow_version_id": version.id,
                "contact_id": contact.id,
                "status": "waiting" if n % LIVE_EVERY == 0 else "completed",
                "node_id": "n0",
                "entered_at": old,
                "updated_at": old,
            }
            for n in range(JOURNEYS)
        ]
        await db.execute(insert(Journey), journeys)
        ids = list(await db.scalars(select(Journey.id).order_by(Journey.id)))
        steps = [
            {
                "journey_id": journey_id,
                "node_id": f"n{k}",
                "visit": 1,
                "node_type": "bench",
                "status": "done",
                "started_at": old,
            }
            for journey_id in ids
            for k in range(STEPS_PER_JOURNEY)
        ]
        for start in range(0, len(steps), 10_000):
            await db.execute(insert(Step), steps[start : start + 10_000])
        events = [
            {"type": "page.viewed", "contact_id": contact.id, "occurred_at": old}
            for _ in range(EVENTS)
        ]
        for start in range(0, len(events), 10_000):
            await db.execute(insert(Event), events[start : start + 10_000])
    await engine.dispose()


async def _ceiling(url: str) -> float:
    """One set-based DELETE per table of the same rows: the fastest the database can drop them."""
    engine = create_engine(url)
    cutoff = utcnow() - timedelta(days=180)
    started = time.perf_counter()
    async with create_sessionmaker(engine)() as db, db.begin():
        live = select(Journey.id).where(Journey.status.in_(LIVE_STATUSES))
        await db.execute(delete(Step).where(Step.started_at < cutoff, Step.journey_id.not_in(live)))
        await db.execute(delete(Event).where(Event.occurred_at < cutoff))
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return elapsed


async def _measure(kind: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with fresh_database(kind, Path(tmp)) as url:
            await _populate(url)
            engine = create_engine(url)
            sessions = create_sessionmaker(engine)
            started = time.perf_counter()
            report = await prune(sessions, POLICY, utcnow())
            batched = time.perf_counter() - started
            started = time.perf_counter()
            idle = await prune(sessions, POLICY, utcnow())
            caught_up = time.perf_counter() - started
            async with sessions() as db:
                kept = len(list(await db.scalars(select(Step.id))))
            await engine.dispose()
        with tempfile.TemporaryDirectory() as tmp2:
            async with fresh_database(kind, Path(tmp2)) as url:
                await _populate(url)
                ceiling = await _ceiling(url)
    rows = report.steps + report.events
    print(
        f"{kind:<11} pruned {report.steps:>7,} steps + {report.events:>6,} events "
        f"in {report.batches:>4} batches: {batched:6.2f} s ({rows / batched:>9,.0f} rows/s); "
        f"one DELETE: {ceiling:5.2f} s (ratio {batched / ceiling:4.1f}); "
        f"kept {kept:,} live steps; nothing left to prune: {caught_up * 1000:6.1f} ms "
        f"({idle.total} rows)"
    )


def main() -> None:
    for kind in ("sqlite", "postgresql"):
        asyncio.run(_measure(kind))


if __name__ == "__main__":
    main()
