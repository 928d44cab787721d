"""The touchpoint board in a browser: a workshop with two people, dragging, the gap view."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from backend.db import create_engine, create_sessionmaker
from backend.lifecycle.plan import add_process, load_plan
from backend.models import Flow, LifecycleProcess, Role, Touchpoint
from tests.backend.lifecycle.helpers import card, first_process, flow, link
from tests.browser.conftest import ACTION_TIMEOUT_MS, LiveServer, sign_in

GRAPH = {
    "nodes": [
        {
            "id": "form",
            "type": "test.trigger",
            "config": {"event_type": "form.submitted"},
            "position": {"x": 40, "y": 40},
        },
        {
            "id": "mail",
            "type": "test.email",
            "config": {"subject": "Tack"},
            "position": {"x": 400, "y": 40},
        },
    ],
    "edges": [{"source": "form", "port": "next", "target": "mail"}],
}


@pytest.fixture
async def second_tab(browser: Browser, live_server: LiveServer) -> AsyncIterator[Page]:
    """Another person's browser: its own cookies, on the same server."""
    context: BrowserContext = await browser.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    yield await context.new_page()
    await context.close()


async def _seed(live_server: LiveServer, flow_status: str = "active") -> dict[str, int]:
    engine = create_engine(live_server.database_url)
    try:
        async with create_sessionmaker(engine)() as db, db.begin():
            process = await first_process(db)
            want = await card(db, process.id, "Kvitto när ärendet kommer in", "customer")
            await card(db, process.id, "Sms när ordern skickas", "customer")
            mail = await card(
                db,
                process.id,
                "Bekräftelsemejl",
                "company",
                status="automated",
                answers_id=want.id,
                channels=["email"],
            )
            made = await flow(
                db,
                "Bekräftelse",
                flow_status,
                {"nodes": [{"id": "mail", "type": "action.email"}], "edges": []},
            )
            await link(db, mail, made, "mail")
            return {"process": process.id, "flow": made.id, "mail": mail.id, "want": want.id}
    finally:
        await engine.dispose()


async def _set_flow_status(live_server: LiveServer, flow_id: int, status: str) -> None:
    engine = create_engine(live_server.database_url)
    try:
        async with create_sessionmaker(engine)() as db, db.begin():
            row = await db.get(Flow, flow_id)
            assert row is not None
            row.status = status
    finally:
        await engine.dispose()


async def _titles(live_server: LiveServer) -> list[str]:
    engine = create_engine(live_server.database_url)
    try:
        async with create_sessionmaker(engine)() as db:
            return list(await db.scalars(select(Touchpoint.title).order_by(Touchpoint.position)))
    finally:
        await engine.dispose()


async def test_two_people_in_a_workshop_lose_no_update(
    page: Page, second_tab: Page, live_server: LiveServer, artifacts: Path
) -> None:
    ids = await _seed(live_server)
    await sign_in(page, Role.marketer)
    await sign_in(second_tab, Role.marketer)
    await page.goto(f"/lifecycle/processes/{ids['process']}/workshop")
    await expect(page.locator(".tp-card")).to_have_count(3)

    # Both open the same card; the second save is refused with words, not lost silently.
    await page.goto(f"/lifecycle/touchpoints/{ids['want']}")
    await second_tab.goto(f"/lifecycle/touchpoints/{ids['want']}")
    await page.fill("#title", "Kvitto inom en timme")
    await page.click("button:has-text('Save')")
    await page.wait_for_url(f"**/lifecycle/processes/{ids['process']}*")
    await second_tab.fill("#title", "Kvittens")
    await second_tab.click("button:has-text('Save')")
    await expect(second_tab.locator(".alert-error")).to_contain_text("Someone else changed")
    assert "Kvitto inom en timme" in await _titles(live_server)

    # The workshop board picks up the other person's new card without a reload.
    await page.goto(f"/lifecycle/processes/{ids['process']}/workshop")
    await second_tab.goto(f"/lifecycle/processes/{ids['process']}")
    await second_tab.click("summary:has-text('Add a touchpoint')")
    await second_tab.fill("#new-title", "Välkomstsamtal")
    await second_tab.check("input[name=category][value=today]")
    await second_tab.click("button:has-text('Add to the timeline')")
    await expect(page.locator(".tp-card", has_text="Välkomstsamtal")).to_be_visible(timeout=15_000)
    await page.screenshot(path=str(artifacts / "lifecycle-board.png"), full_page=True)


async def test_drag_a_card_and_watch_the_gap_view_follow_the_flow(
    page: Page, live_server: LiveServer, artifacts: Path
) -> None:
    ids = await _seed(live_server)
    await sign_in(page, Role.marketer, to=f"/lifecycle/processes/{ids['process']}")
    mail = page.locator(f"#card-{ids['mail']}")
    await mail.drag_to(page.locator(".tp-card").first, target_position={"x": 5, "y": 40})
    await expect(page.locator(".tp-card").first).to_contain_text("Bekräftelsemejl")
    assert (await _titles(live_server))[0] == "Bekräftelsemejl"
    # The keyboard way: the button moves it back one place.
    await page.locator(f"#card-{ids['mail']} button:has-text('Later')").click()
    await expect(page.locator(".tp-card").nth(1)).to_contain_text("Bekräftelsemejl")

    await page.goto("/lifecycle/gaps")
    total = page.locator("#gap-table .tp-total-row")
    await expect(total).to_contain_text("1 / 1 (100 %)")
    await expect(total).to_contain_text("50 %")
    await page.screenshot(path=str(artifacts / "lifecycle-gaps.png"), full_page=True)
    await _set_flow_status(live_server, ids["flow"], "paused")
    await page.reload()
    await expect(total).to_contain_text("0 / 1 (0 %)")
    await page.goto(f"/lifecycle/processes/{ids['process']}")
    await expect(page.locator(f"#card-{ids['mail']} .tp-warning").first).to_contain_text(
        "is paused"
    )


async def test_link_a_card_to_a_node_and_see_it_in_the_editor(
    page: Page, live_server: LiveServer
) -> None:
    ids = await _seed(live_server)
    await sign_in(page, Role.marketer, to=f"/flows/{ids['flow']}/edit")
    await page.locator("#node-mail").click()
    served = page.locator("#panel #node-touchpoints")
    await expect(served).to_contain_text("Bekräftelsemejl")
    # Link the customer's touchpoint to the same step from the panel.
    await served.locator("#node-touchpoint").select_option(value=str(ids["want"]))
    await served.get_by_role("button", name="Link", exact=True).click()
    await expect(page.locator("#panel #node-touchpoints")).to_contain_text("Kvitto när")
    await page.goto(f"/lifecycle/touchpoints/{ids['want']}")
    await expect(page.locator("main")).to_contain_text("node mail")


async def test_drag_a_card_to_another_process_on_the_phase_board(
    page: Page, live_server: LiveServer
) -> None:
    ids = await _seed(live_server)
    engine = create_engine(live_server.database_url)
    try:
        async with create_sessionmaker(engine)() as db, db.begin():
            process = await db.get(LifecycleProcess, ids["process"])
            assert process is not None
            fairs = await add_process(db, process.phase_id, "Mässor")
            phase_id, fairs_id = process.phase_id, fairs.id
    finally:
        await engine.dispose()
    await sign_in(page, Role.marketer, to=f"/lifecycle/phases/{phase_id}")
    target = page.locator(f'.tp-timeline[data-process="{fairs_id}"]')
    await page.locator(f"#card-{ids['mail']}").drag_to(target)
    await expect(target.locator(".tp-card")).to_have_count(1)
    await expect(target).to_contain_text("Bekräftelsemejl")
    engine = create_engine(live_server.database_url)
    try:
        async with create_sessionmaker(engine)() as db:
            moved = await db.get(Touchpoint, ids["mail"])
            assert moved is not None and moved.process_id == fairs_id
    finally:
        await engine.dispose()


async def test_choose_a_flows_process_and_follow_it_to_the_board(
    page: Page, live_server: LiveServer
) -> None:
    engine = create_engine(live_server.database_url)
    try:
        async with create_sessionmaker(engine)() as db, db.begin():
            web = await first_process(db)
            retain = next(v for v in await load_plan(db) if v.phase.flow_phase == "retain")
            churn = await add_process(db, retain.phase.id, "Återvinn kunder")
            web_id, churn_id = web.id, churn.id
    finally:
        await engine.dispose()
    await sign_in(page, Role.marketer, to="/flows/new")
    await page.get_by_label("Name").fill("Vi saknar dig")
    await page.get_by_label("Lifecycle process").select_option(label="Återvinn kunder")
    await page.get_by_role("button", name="Create draft").click()
    await page.wait_for_url("**/flows/*/edit")
    flow_id = int(page.url.rstrip("/").split("/")[-2])
    await page.goto(f"/flows/{flow_id}")
    facts = page.locator("dl.facts")
    await expect(facts).to_contain_text("Retain")
    await expect(facts).to_contain_text("Återvinn kunder")
    # Moving the flow to a process of another phase moves its phase too.
    await page.get_by_label("Lifecycle process").select_option(label="Konvertering från webben")
    await page.get_by_role("button", name="Save the process").click()
    await expect(facts).to_contain_text("Attract")
    await expect(facts).to_contain_text("Konvertering från webben")
    await facts.get_by_role("link", name="Konvertering från webben").click()
    await page.wait_for_url(f"**/lifecycle/processes/{web_id}")
    await page.goto("/flows")
    await page.locator("#filter-process").select_option(value=str(churn_id))
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("main")).to_contain_text("No flow matches this filter.")
    await page.locator("#filter-process").select_option(value=str(web_id))
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("tbody")).to_contain_text("Vi saknar dig")
