"""What one batch costs the database on PostgreSQL: three statements, one transaction.

Issue 15: a batch of 500 journeys used to take eleven or twelve round trips
(the claim's transaction with its profile read, then a write transaction of
lock, lease delete, two step inserts, conversions and cursors). Now the claim
is one statement run outside a transaction (it brings the customers and wake
events along; a claim that came back short is taken again once), and the
write is one transaction of two statements: the ownership check with the
step rows and conversions, then the cursors.
Counted here with a listener on the real engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.models import Journey, Step
from runtime.clock import FakeClock
from runtime.engine import Runtime
from runtime.models import JourneyConversion, JourneyLease
from tests.runtime.conftest import add_contacts, publish, update_contact
from tests.runtime.nodes import graph

_FLOW = graph(
    [
        ("t", "test.trigger", {"event_type": "signed.up"}),
        ("c", "test.condition", {"attribute": "vip"}),
        ("g", "test.goal", {"event_type": "bought"}),
    ],
    [("t", "next", "c"), ("c", "yes", "g"), ("c", "no", "g")],
)


@contextmanager
def _statements(engine: AsyncEngine) -> Iterator[list[tuple[str, bool]]]:
    """Each statement's first word and whether it ran outside a transaction (autocommit)."""
    seen: list[tuple[str, bool]] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        autocommit = conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
        seen.append((statement.split(None, 1)[0].upper(), autocommit))

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)


async def test_a_batch_is_one_claim_statement_and_one_write_transaction_of_two(
    runtime: Runtime, engine: AsyncEngine, clock: FakeClock
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's single writer takes the claim and the write statement by statement")
    ids = await add_contacts(runtime, 12)
    await update_contact(runtime, ids[0], attributes={"vip": True})
    await publish(runtime, _FLOW)
    for contact in ids:
        await runtime.ingest("signed.up", contact_id=contact)

    with _statements(engine) as seen:
        reports = [await runtime.step(limit=5) for _ in range(4)]
    assert [r.claimed for r in reports] == [5, 5, 2, 0]
    assert sum(r.steps for r in reports) == 12 * 3
    claim, record, cursors = ("WITH", True), ("WITH", False), ("UPDATE", False)
    # A short claim is taken again once (another worker's claim may have crossed it).
    assert seen == [claim, record, cursors] * 2 + [claim, claim, record, cursors, claim, claim]

    async with runtime.sessions() as session:
        done = (await session.execute(select(Journey.id, Journey.status))).all()
        history = await session.execute(select(Step.journey_id, Step.node_id).order_by(Step.id))
        leases = await session.scalar(select(func.count()).select_from(JourneyLease))
        converted = await session.scalar(select(func.count()).select_from(JourneyConversion))
    assert {status for _, status in done} == {"completed"}
    by_journey: dict[int, list[str]] = {}
    for journey_id, node_id in history:
        by_journey.setdefault(journey_id, []).append(node_id)
    # The first step of a walk (which may reopen a row) and the rest go in one statement;
    # their ids still follow the order the walk took them.
    assert list(by_journey.values()) == [["t", "c", "g"]] * 12
    assert leases == 0 and converted == 12


async def test_each_node_sees_its_own_customer_from_the_claim(
    runtime: Runtime, engine: AsyncEngine, clock: FakeClock
) -> None:
    """On PostgreSQL the profile comes from the claim statement itself (its wake-up
    events too: test_waits.py); SQLite reads them after the claim. Both walk alike."""
    ids = await add_contacts(runtime, 3)
    await update_contact(runtime, ids[1], attributes={"vip": True})
    await publish(runtime, _FLOW)
    for contact in ids:
        await runtime.ingest("signed.up", contact_id=contact)
    await runtime.drain()
    async with runtime.sessions() as session:
        ports = dict(
            (
                await session.execute(
                    select(Journey.contact_id, Step.port)
                    .join(Step, Step.journey_id == Journey.id)
                    .where(Step.node_id == "c")
                )
            ).all()
        )
    assert ports == {ids[0]: "no", ids[1]: "yes", ids[2]: "no"}
