"""Rows sent as one JSON parameter are stored as a Core INSERT would store them (PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from runtime.bulk_insert import insert_rows
from runtime.sql import CONTACTS, EVENTS


@pytest.fixture
def pg_sessions(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> async_sessionmaker[AsyncSession]:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite keeps the Core INSERT")
    return sessions


async def test_values_types_order_and_defaults_come_through(
    pg_sessions: async_sessionmaker[AsyncSession],
) -> None:
    sessions = pg_sessions
    naive = datetime(2030, 1, 2, 3, 4, 5, 678901)
    aware = datetime(2030, 1, 2, 3, 4, 5, 1, tzinfo=UTC)
    properties = [
        {"text": 'Malmö ☃ 😀 "quoted" \\ back', "n": 2**53 + 1, "f": 0.1, "none": None},
        {"nested": {"list": [1, "two", [3.5, False]]}, "empty": {}},
        {},
    ]
    async with sessions() as session, session.begin():
        contact_ids = (
            await insert_rows(
                session,
                CONTACTS,
                {"email": ["a@example.com", "b@example.com"], "external_id": [None, "b"]},
                "RETURNING id",
            )
        ).scalars()
        first, second = sorted(contact_ids)
        returned = await insert_rows(
            session,
            EVENTS,
            {
                "type": ["one", "two", "three"],
                "contact_id": [first, second, first],
                "properties": properties,
                "dedupe_key": ["k1", None, "k3"],
                "occurred_at": [naive, aware, aware],
                "received_at": [aware] * 3,
            },
            "RETURNING id, dedupe_key",
        )
        ids = {row.dedupe_key: row.id for row in returned}
    async with sessions() as session:
        rows = (await session.execute(select(EVENTS).order_by(EVENTS.c.id))).all()
        contact = (await session.execute(select(CONTACTS).where(CONTACTS.c.id == first))).one()
    assert [r.type for r in rows] == ["one", "two", "three"]  # ids follow the rows
    assert ids["k1"] == rows[0].id and ids["k3"] == rows[2].id
    assert [r.properties for r in rows] == properties
    assert rows[0].occurred_at == naive.replace(tzinfo=UTC)  # a naive time is UTC
    assert rows[1].occurred_at == aware
    assert [r.source for r in rows] == ["api"] * 3 and [r.claimed for r in rows] == [False] * 3
    assert (contact.first_name, contact.lifecycle_stage, contact.tags) == ("", "subscriber", [])


async def test_a_value_longer_than_its_column_is_refused_not_cut(
    pg_sessions: async_sessionmaker[AsyncSession],
) -> None:
    sessions = pg_sessions
    with pytest.raises(DBAPIError, match="too long"):
        async with sessions() as session, session.begin():
            await insert_rows(session, CONTACTS, {"email": ["x" * 400 + "@example.com"]})
