"""The test databases: emptied between tests, with ids starting again from 1."""

from __future__ import annotations

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.models import AuditEntry, Base, Contact, Flow, User
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


async def test_truncate_empties_the_audit_log_and_restarts_ids_a_rollback_used(
    engine: AsyncEngine,
) -> None:
    """Only the tables with rows are emptied; these two need more than a DELETE: the
    append-only audit log (its triggers refuse one), and an id handed out by an insert
    that was rolled back (PostgreSQL's sequence moved on while its table stayed empty)."""
    async with engine.begin() as conn:
        await conn.execute(insert(AuditEntry).values(actor_type="system", action="test.one"))
    async with engine.connect() as conn:
        await conn.execute(insert(Flow).values(name="Rolled back"))
        await conn.rollback()
    await truncate_all(engine)
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(AuditEntry)) == 0
    async with engine.begin() as conn:
        flow = await conn.scalar(insert(Flow).values(name="First").returning(Flow.id))
        entry = await conn.scalar(
            insert(AuditEntry)
            .values(actor_type="system", action="test.two")
            .returning(AuditEntry.id)
        )
    assert (flow, entry) == (1, 1)
