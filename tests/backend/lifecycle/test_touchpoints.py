"""Cards: validation, the revision rule, moving along and between timelines, horizons."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.lifecycle.plan import add_process
from backend.lifecycle.touchpoints import (
    Conflict,
    horizon_of,
    move_card,
    read_card,
    read_horizons,
    update_card,
)
from backend.models import Touchpoint
from tests.backend.lifecycle.helpers import card, first_process


def test_read_card_reports_each_bad_field() -> None:
    bad = read_card(
        {"title": " ", "category": "boss", "priority": "4", "status": "done", "audience": "{x"},
        ["email", "carrier pigeon"],
    )
    assert set(bad.errors) == {"title", "category", "priority", "status", "channels", "audience"}
    good = read_card(
        {
            "title": " Välkomstmejl  till   nya ",
            "category": "company",
            "priority": "1",
            "audience": '{"field": "first_name", "op": "equals", "value": "Åsa"}',
        },
        ["Email", "sms", "email"],
    )
    assert good.ok, good.errors
    assert good.values["title"] == "Välkomstmejl till nya"
    assert good.values["channels"] == ["email", "sms"]
    assert good.values["audience_rule"]["field"] == "first_name"
    invalid_rule = read_card(
        {"title": "x", "category": "today", "audience": '{"field": "city", "op": "bogus"}'}, []
    )
    assert "audience" in invalid_rule.errors


async def test_a_stale_revision_is_refused_and_the_first_save_kept(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as db, db.begin():
        process = await first_process(db)
        note = await card(db, process.id, "Kvitto", "customer")
    async with sessions() as db, db.begin():
        saved, changed = await update_card(db, note.id, 1, {"title": "Kvitto på ärendet"})
    assert saved.revision == 2 and changed == {"title": ["Kvitto", "Kvitto på ärendet"]}
    async with sessions() as db:
        with pytest.raises(Conflict) as conflict:
            await update_card(db, note.id, 1, {"title": "Kvittens"})
        assert "revision 2" in conflict.value.message
    async with sessions() as db:
        kept = await db.get(Touchpoint, note.id)
        assert kept is not None and kept.title == "Kvitto på ärendet"


async def test_moving_cards_along_and_between_timelines(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as db, db.begin():
        web = await first_process(db)
        other = await add_process(db, web.phase_id, "Mässor")
        a = await card(db, web.id, "A", "today")
        b = await card(db, web.id, "B", "today")
        c = await card(db, web.id, "C", "today")
    async with sessions() as db, db.begin():
        await move_card(db, c.id, 1, index=0)
        await move_card(db, a.id, 1, offset=1)
        # B was renumbered but keeps its revision: nobody editing it is disturbed.
        await move_card(db, b.id, 1, process_id=other.id, index=0)
    async with sessions() as db:
        rows = list(await db.scalars(select(Touchpoint).order_by(Touchpoint.position)))
        web_order = [row.title for row in rows if row.process_id == web.id]
        assert web_order == ["C", "A"]
        assert [row.title for row in rows if row.process_id == other.id] == ["B"]
        with pytest.raises(Conflict):
            await move_card(db, a.id, 1, index=0)


async def test_horizons_and_overdue(sessions: async_sessionmaker[AsyncSession]) -> None:
    values, errors = read_horizons({"horizon_1": "6", "horizon_2": "3", "horizon_3": "x"})
    assert set(errors) == {"horizon_3"}
    values, errors = read_horizons({"horizon_1": "6", "horizon_2": "12", "horizon_3": "24"})
    assert not errors and values == {1: 6, 2: 12, 3: 24}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with sessions() as db, db.begin():
        process = await first_process(db)
        urgent = await card(db, process.id, "Kvitto", "customer", priority=1)
        urgent.prioritised_at = start
        done = await card(db, process.id, "Faktura", "company", priority=1, status="automated")
        done.prioritised_at = start
    later = start + timedelta(days=200)
    assert horizon_of(urgent, values, later).overdue
    assert horizon_of(urgent, values, later).due == start + timedelta(days=180)
    assert not horizon_of(urgent, values, start + timedelta(days=100)).overdue
    assert not horizon_of(done, values, later).overdue


async def test_two_saves_at_once_from_the_same_revision_one_wins(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as db, db.begin():
        process = await first_process(db)
        note = await card(db, process.id, "Kvitto", "customer")

    async def save(title: str) -> str:
        try:
            async with sessions() as db, db.begin():
                await update_card(db, note.id, 1, {"title": title})
        except Conflict:
            return "refused"
        return "saved"

    outcomes = await asyncio.gather(save("Kvitto A"), save("Kvitto B"))
    assert sorted(outcomes) == ["refused", "saved"]
    async with sessions() as db:
        kept = await db.get(Touchpoint, note.id)
    assert kept is not None and kept.revision == 2
    winner = "Kvitto A" if outcomes[0] == "saved" else "Kvitto B"
    assert kept.title == winner
