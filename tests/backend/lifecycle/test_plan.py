"""Phases and processes: seeded once, templates, reorder, and nothing in use vanishes."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.lifecycle.plan import (
    PlanError,
    apply_template,
    ensure_workspace,
    load_plan,
    move_phase,
    rename,
    restore,
    retire_phase,
    retire_process,
)
from tests.backend.lifecycle.helpers import card, first_process, flow


async def test_the_default_phases_are_seeded_once_even_by_two_first_visitors(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async def visit() -> None:
        async with sessions() as db, db.begin():
            await ensure_workspace(db)

    await asyncio.gather(visit(), visit())
    await visit()
    async with sessions() as db:
        names = [view.phase.name for view in await load_plan(db)]
    assert names == ["Attract & convert", "Welcome", "Engage & develop", "Retain", "Exit"]


async def test_b2b_template_rename_and_reorder(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as db, db.begin():
        await ensure_workspace(db)
        added = await apply_template(db, "b2b")
        await rename(db, added[0].id, None, "  Ännu inte   aktiv ")
        await move_phase(db, added[0].id, -1)
    async with sessions() as db:
        names = [view.phase.name for view in await load_plan(db)]
    assert len(names) == 12
    assert names[4:7] == ["Ännu inte aktiv", "Exit", "Trigger"]
    async with sessions() as db:
        with pytest.raises(PlanError):
            await apply_template(db, "b2c")
        with pytest.raises(PlanError):
            await rename(db, added[0].id, None, "   ")


async def test_a_phase_in_use_cannot_be_retired_until_emptied(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as db, db.begin():
        process = await first_process(db)
        note = await card(db, process.id, "Välkomstmejl", "company")
        phase_id = process.phase_id
    async with sessions() as db, db.begin():
        with pytest.raises(PlanError) as refused:
            await retire_phase(db, phase_id)
        assert refused.value.status == 409
        assert "1 touchpoints and 0 flows" in refused.value.message
    async with sessions() as db, db.begin():
        made = await flow(db, "Webbformulär", "active")
        made.process_id = process.id
        note.status = "retired"
        await db.merge(note)
    async with sessions() as db, db.begin():
        with pytest.raises(PlanError, match="0 touchpoints and 1 flows"):
            await retire_process(db, process.id)
    async with sessions() as db, db.begin():
        archived = await db.get(type(made), made.id)
        assert archived is not None
        archived.status = "archived"
    async with sessions() as db, db.begin():
        await retire_phase(db, phase_id)
    async with sessions() as db:
        plan = await load_plan(db)
        assert phase_id not in [view.phase.id for view in plan]
        everything = await load_plan(db, include_retired=True)
        assert phase_id in [view.phase.id for view in everything]
    async with sessions() as db, db.begin():
        await restore(db, None, process.id)
    async with sessions() as db:
        assert [p.id for p in (await load_plan(db))[0].processes] == [process.id]
