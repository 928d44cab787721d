"""The conversion page in a browser: from the flow page to the verdict, and sending
everyone down the winner through the confirmation step. axe-core checks both pages."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from backend.db import create_engine, create_sessionmaker
from backend.models import AuditEntry, Flow, FlowVersion, Role
from tests.backend.web.test_conversion import seed
from tests.browser.conftest import LiveServer, sign_in
from tests.browser.test_accessibility import _axe, _report

pytestmark = pytest.mark.browser


async def test_a_marketer_reads_the_verdict_and_sends_everyone_down_the_winner(
    page: Page, live_server: LiveServer
) -> None:
    engine = create_engine(live_server.database_url)
    try:
        flow_id = await seed(create_sessionmaker(engine))
    finally:
        await engine.dispose()
    await sign_in(page, Role.marketer, to=f"/flows/{flow_id}")
    await page.get_by_role("link", name="Conversion").click()
    await page.wait_for_url(f"**/flows/{flow_id}/conversion")
    await expect(page.get_by_role("heading", name="A/B test: Channel test")).to_be_visible()
    await expect(page.locator("#split-ab .verdict")).to_have_text(
        "SMS converts better, 95% confident."
    )
    await expect(page.locator("#conversion-overall")).to_contain_text("15.0%")
    await expect(page.locator("table.chart-data")).to_have_count(4)
    violations = await _axe(page)
    assert not violations, _report("the conversion page", violations)

    await page.get_by_role("link", name="Send everyone down SMS").click()
    await expect(page.get_by_role("heading", name="Send everyone down SMS?")).to_be_visible()
    violations = await _axe(page)
    assert not violations, _report("the winner confirmation", violations)
    await page.get_by_role("button", name="Publish with everyone down SMS").click()
    await page.wait_for_url(f"**/flows/{flow_id}/conversion")
    # The live version has no split any more, so there is no test to show.
    await expect(page.get_by_role("heading", name="A/B test: Channel test")).to_have_count(0)

    engine = create_engine(live_server.database_url)
    try:
        async with create_sessionmaker(engine)() as db:
            flow = await db.get(Flow, flow_id)
            assert flow is not None
            live = await db.get(FlowVersion, flow.published_version_id)
            assert live is not None and live.number == 2
            assert [e["target"] for e in live.graph["edges"]] == ["text"]
            actions = (await db.execute(select(AuditEntry.action))).scalars().all()
            assert "flow.split_winner" in actions
    finally:
        await engine.dispose()
