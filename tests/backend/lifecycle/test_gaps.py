"""The gap analysis's numbers, on a plan whose answers are counted by hand."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.lifecycle.gaps import load_gaps
from backend.lifecycle.plan import add_process, load_plan
from tests.backend.lifecycle.helpers import card, first_process, flow, link


async def test_coverage_numbers_per_process_phase_and_total(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as db, db.begin():
        web = await first_process(db)
        plan = await load_plan(db)
        welcome = await add_process(db, plan[1].phase.id, "Välkomstprogram")
        # The customer's side: one met (twice), two unmet, one retired and ignored.
        receipt = await card(db, web.id, "Kvitto när ärendet kommer in", "customer")
        await card(db, web.id, "Svar inom en dag", "customer")
        await card(db, web.id, "Sms när ordern skickas", "customer")
        await card(db, web.id, "Gammal önskan", "customer", status="retired")
        # The company's side.
        await card(db, web.id, "Bekräftelse", "company", answers_id=receipt.id)
        await card(db, web.id, "Säljarens samtal", "today", answers_id=receipt.id)
        await card(db, web.id, "Månadserbjudande", "company")
        live = await card(db, web.id, "Välkomstmejl", "company", status="automated")
        paused = await card(db, web.id, "Inbjudan", "company", status="automated")
        await card(
            db, web.id, "Handskriven bekräftelse", "today", status="manual", channels=["email"]
        )
        await card(db, web.id, "Uppringning", "today", status="manual", channels=["phone"])
        await link(db, live, await flow(db, "Välkomst", "active"))
        await link(db, paused, await flow(db, "Inbjudningar", "paused"))
        # The next phase: an unmet customer card and an automated card with no flow.
        await card(db, welcome.id, "Hjälp att komma igång", "customer")
        await card(db, welcome.id, "Faktura med erbjudande", "company", status="automated")

    async with sessions() as db:
        report = await load_gaps(db, total_label="All")

    first = report.phases[0]
    process_id, web_gaps = first.processes[0]
    assert process_id == web.id
    assert [c.title for c in web_gaps.unmet] == ["Svar inom en dag", "Sms när ordern skickas"]
    assert web_gaps.customer_total == 3 and web_gaps.customer_coverage == 33
    assert web_gaps.company_total == 7 and len(web_gaps.asked) == 2
    assert web_gaps.company_relevance == 29
    assert [c.title for c in web_gaps.automated_dead] == ["Inbjudan"]
    assert web_gaps.automation_live == 50
    assert [c.title for c in web_gaps.could_automate] == ["Handskriven bekräftelse"]
    assert first.gaps.customer_coverage == 33

    second = report.phases[1]
    assert second.gaps.customer_coverage == 0
    assert second.gaps.company_relevance == 0
    assert second.gaps.automation_live == 0
    # Phases with nothing on them measure nothing rather than 0 %.
    assert report.phases[2].gaps.customer_coverage is None

    assert report.total.customer_total == 4
    assert report.total.customer_coverage == 25
    assert report.total.company_total == 8
    assert report.total.automation_live == 33


async def test_publishing_the_linked_flow_closes_the_automation_gap(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as db, db.begin():
        web = await first_process(db)
        mail = await card(db, web.id, "Välkomstmejl", "company", status="automated")
        made = await flow(db, "Välkomst", "draft")
        await link(db, mail, made, "n1")
    async with sessions() as db:
        before = (await load_gaps(db, total_label="All")).total
    async with sessions() as db, db.begin():
        made.status = "active"
        await db.merge(made)
    async with sessions() as db:
        after = (await load_gaps(db, total_label="All")).total
    assert before.automation_live == 0 and [c.title for c in before.automated_dead] == [
        "Välkomstmejl"
    ]
    assert after.automation_live == 100 and after.automated_dead == []
