"""The test databases: emptied between tests, with ids starting again from 1."""

from __future__ import annotations

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.models import Base, Contact, User
from tests.support.stores import truncate_all


async def test_truncate_empties_every_table_and_restarts_the_ids(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        owner = await conn.scalar(
            insert(User)
            .values(email="å@example.test", name="Åsa", password_hash="x")
            .returning(User.id)
        )
        await conn.execute(
            insert(Contact), [{"email": f"c{n}@example.test", "owner_id": owner} for n in range(3)]
        )
    await truncate_all(engine)
    async with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            assert await conn.scalar(select(func.count()).select_from(table)) == 0, table.name
    async with engine.begin() as conn:
        again = await conn.scalar(
            insert(User)
            .values(email="b@example.test", name="B", password_hash="x")
            .returning(User.id)
        )
    assert again == 1
