"""Task routing in Chromium: the editor warns; the flow's page and the form editor set turns."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from backend.db import create_engine, create_sessionmaker
from backend.models import Contact, Role, User
from tests.browser.conftest import USERS, LiveServer, sign_in
from tests.browser.test_marketer import _flow, _marketer_flow

pytestmark = pytest.mark.browser
NO_OWNER = "have no owner, so this task would be unassigned"


async def _user_ids(live_server: LiveServer) -> dict[str, int]:
    engine = create_engine(live_server.database_url)
    async with create_sessionmaker(engine)() as db:
        found = {row.email: row.id for row in await db.execute(select(User.email, User.id))}
    await engine.dispose()
    return found


async def test_the_flows_round_robin_silences_the_editors_owner_warning(
    page: Page, live_server: LiveServer
) -> None:
    flow_id = await _flow(live_server, "Nedladdning", _marketer_flow())
    await sign_in(page, Role.marketer, to=f"/flows/{flow_id}/edit")
    warnings = page.locator(".warning-list")
    await expect(warnings).to_contain_text(NO_OWNER)
    await expect(warnings.locator('[data-select-node="notify"]')).to_be_visible()

    await page.goto(f"/flows/{flow_id}")
    routing = page.locator("#flow-routing")
    await routing.get_by_label("Admin").check()
    await routing.get_by_label("Marketer").check()
    await routing.get_by_role("button", name="Save who takes the tasks").click()
    await expect(page.locator("#flow-routing").get_by_label("Marketer")).to_be_checked()
    await expect(page.locator("#flow-routing").get_by_label("Viewer")).to_have_count(0)

    await page.goto(f"/flows/{flow_id}/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    await expect(page.locator("#problems")).not_to_contain_text(NO_OWNER)


async def _submit(page: Page, address: str, email: str) -> None:
    await page.goto(address)
    await page.fill("#tf-email", email)
    # The form refuses answers typed faster than a person can; this one was started a minute ago.
    await page.eval_on_selector(
        'input[name="form_started_at"]', "el => { el.value = String(Number(el.value) - 60) }"
    )
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("body")).to_contain_text("Thank you!")


async def test_a_forms_round_robin_deals_out_its_new_contacts(
    page: Page, live_server: LiveServer
) -> None:
    await sign_in(page, Role.marketer, to="/forms/new")
    await page.fill("#name", "Whitepaper")
    await page.get_by_label("Admin").check()
    await page.get_by_label("Marketer").check()
    await page.get_by_role("button", name="Create form").click()
    await expect(page.get_by_label("Marketer")).to_be_checked()
    address = await page.get_by_role("link", name="/f/").get_attribute("href")
    assert address is not None

    for email in ("ann@exempel.se", "bo@exempel.se", "cia@exempel.se", "dan@exempel.se"):
        await _submit(page, address, email)
    engine = create_engine(live_server.database_url)
    async with create_sessionmaker(engine)() as db:
        owners = list(await db.scalars(select(Contact.owner_id).order_by(Contact.id)))
    await engine.dispose()
    users = await _user_ids(live_server)
    admin, marketer = users[USERS[Role.admin]], users[USERS[Role.marketer]]
    assert sorted(owners) == sorted([admin, marketer, admin, marketer])
    assert owners[0] != owners[1] and owners[2] != owners[3]
