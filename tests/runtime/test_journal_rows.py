"""What the journal writes reads back as written, on both databases: a None is SQL NULL.

On PostgreSQL the step rows and journey cursors travel as one JSON parameter,
where a Python None is JSON ``null``; in a JSON column that must still become
SQL NULL (``IS NULL``), never the JSON value ``null``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from runtime.bulk_insert import json_rows, json_rows_select, json_stamp
from runtime.clock import FakeClock
from runtime.engine import Runtime
from runtime.sql import JOURNEYS
from tests.runtime.conftest import add_contacts, journeys, publish, steps
from tests.runtime.nodes import graph

_FLOW = graph(
    [
        ("t", "test.trigger", {"event_type": "signed.up"}),
        ("w", "test.wait", {"hours": 1}),
        ("e", "test.wait_event", {"event_type": "app.opened", "match": {"plan": "pró"}}),
        ("end", "test.end", {"reason": "réussi ☃"}),
    ],
    [("t", "next", "w"), ("w", "next", "e"), ("e", "event", "end"), ("e", "timeout", "end")],
)


async def _nulls(rt: Runtime, sql: str) -> list[tuple[object, ...]]:
    async with rt.sessions() as session:
        return [tuple(row) for row in (await session.execute(text(sql))).all()]


async def test_nulls_and_values_round_trip(runtime: Runtime, clock: FakeClock) -> None:
    [contact] = await add_contacts(runtime, 1)
    await publish(runtime, _FLOW)
    await runtime.ingest("signed.up", contact_id=contact)
    await runtime.drain()

    # Parked in a timer wait: no event wait, nothing ended, no error.
    assert await _nulls(
        runtime,
        "SELECT wait_match IS NULL, wait_event_type IS NULL, ended_at IS NULL, "
        "exit_reason IS NULL, last_error IS NULL, wake_event_id IS NULL, due_at IS NULL, "
        "entry_key IS NULL FROM journeys",
    ) == [(True, True, True, True, True, True, False, False)]
    # The waiting step: no port, not finished, no error; its input and output are objects.
    assert await _nulls(
        runtime,
        "SELECT node_id, port IS NULL, finished_at IS NULL, error IS NULL, input IS NULL, "
        "output IS NULL, duration_ms IS NULL FROM steps ORDER BY id",
    ) == [
        ("t", False, False, True, False, False, False),
        ("w", True, True, True, False, False, False),
    ]
    [journey] = await journeys(runtime)
    assert journey.due_at == clock.now() + timedelta(hours=1)
    assert (journey.visits, journey.status) == ({"t": 1, "w": 1}, "waiting")
    trigger = journey.data["trigger"]
    assert trigger["type"] == "signed.up" and trigger["properties"] == {}

    clock.advance(timedelta(hours=1, seconds=1))
    await runtime.drain()
    # Parked in an event wait: its match is an object; the timer wait's step is finished.
    [journey] = await journeys(runtime)
    assert (journey.wait_event_type, journey.wait_match) == ("app.opened", {"plan": "pró"})
    assert journey.waiting_since == clock.now()
    history = {s.node_id: s for s in await steps(runtime)}
    assert (history["w"].status, history["w"].port) == ("done", "next")
    assert history["w"].finished_at == clock.now()
    assert history["w"].finished_at.tzinfo is not None
    assert history["w"].output["woke"] == {"reason": "timer", "event_id": None}

    opened = await runtime.ingest("app.opened", contact_id=contact, properties={"plan": "pró"})
    await runtime.drain()
    [journey] = await journeys(runtime)
    assert (journey.status, journey.exit_reason) == ("completed", "réussi ☃")
    assert journey.ended_at == clock.now().astimezone(UTC)
    assert journey.visits == {"t": 1, "w": 1, "e": 1, "end": 1}
    assert journey.data == {"trigger": trigger, "woken_by": opened.event_id}
    # Ended: the wait and the entry key are gone as SQL NULLs, not JSON nulls.
    assert await _nulls(
        runtime,
        "SELECT wait_match IS NULL, wait_event_type IS NULL, due_at IS NULL, "
        "entry_key IS NULL, ended_at IS NULL FROM journeys",
    ) == [(True, True, True, True, False)]
    history = {s.node_id: s for s in await steps(runtime)}
    assert (history["e"].port, history["end"].port, history["end"].status) == (
        "event",
        None,
        "ended",
    )
    assert history["end"].input == {"trigger": trigger, "woken_by": opened.event_id}
    assert isinstance(history["end"].duration_ms, float)
    assert await _nulls(runtime, "SELECT count(*) FROM steps WHERE port IS NULL") == [(1,)]


async def test_json_rows_keep_nulls_types_and_order(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The rows helper on its own: every None is SQL NULL, a JSON null inside a value stays."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite writes with executemany")
    naive = datetime(2030, 1, 2, 3, 4, 5, 678901)
    columns = ("id", "status", "data", "wait_match", "due_at", "attempts", "last_error")
    rows = [
        [2, "null", {"x": None}, None, json_stamp(naive), 1, None],
        [1, "waiting", {}, {"plan": "pró"}, json_stamp(naive.replace(tzinfo=UTC)), 0, "Malmö ☃"],
        [3, "active", {}, {}, None, 0, ""],
    ]
    rows_sql = json_rows_select(JOURNEYS, columns)
    # The helper's SQL is built from the table's metadata, with no input in it.
    sql = text(f"SELECT v.*, v.wait_match IS NULL FROM ({rows_sql} ORDER BY r.at) AS v")  # noqa: S608
    async with sessions() as session:
        got = (await session.execute(sql, {"rows": json_rows(rows)})).all()
    stamp = naive.replace(tzinfo=UTC)  # a naive time is UTC
    assert [tuple(r) for r in got] == [
        (2, "null", {"x": None}, None, stamp, 1, None, True),
        (1, "waiting", {}, {"plan": "pró"}, stamp, 0, "Malmö ☃", False),
        (3, "active", {}, {}, None, 0, "", False),
    ]
    with pytest.raises(TypeError):
        json_rows([[{"unstorable": {1, 2}}]])  # refused, as a JSON column's own value is
