"""The Runs pages in Chromium: filtering, a bulk retry, and "Show on canvas"."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from backend.db import create_engine, create_sessionmaker
from backend.models import Role
from tests.backend.web import test_run_detail, test_runs
from tests.browser.conftest import LiveServer, sign_in
from tests.browser.test_accessibility import _axe, _report

pytestmark = pytest.mark.browser


async def test_filters_narrow_the_list_and_a_bulk_retry_asks_first(
    page: Page, live_server: LiveServer
) -> None:
    engine = create_engine(live_server.database_url)
    seeded = await test_runs.seed(create_sessionmaker(engine))
    await engine.dispose()
    await sign_in(page, Role.admin, to="/runs")
    rows = page.locator("#run-results tbody tr")
    await expect(rows).to_have_count(6)
    await expect(rows.first).to_have_class("needs-attention")

    await page.select_option("#filter-flow", label="Välkomstflöde")
    await expect(rows).to_have_count(4)
    await expect(page).to_have_url(re.compile(rf"/runs\?flow={seeded.flow_a}&"))  # pushed
    await page.fill("#filter-error", "mailbox")
    await page.press("#filter-error", "Enter")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("asa@example.se")
    violations = await _axe(page)
    assert not violations, _report("/runs filtered", violations)

    await page.check(f"#run-{seeded.failed}")
    await page.get_by_role("button", name="Retry…").click()
    await expect(page.locator("h1")).to_have_text("Retry runs?")
    await expect(page.locator(".lead")).to_have_text("1 run will run its failed step again, now.")
    await page.get_by_role("button", name="Retry 1 run").click()
    await expect(page.locator(".lead")).to_have_text("1 run retried.")
    await page.get_by_role("link", name="Back to the runs").click()
    await expect(page.locator("#filter-error")).to_have_value("mailbox")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Active")  # running again, its last error kept


async def test_show_on_canvas_marks_the_runs_path(page: Page, live_server: LiveServer) -> None:
    engine = create_engine(live_server.database_url)
    _flow_id, journey_id = await test_run_detail.seed(create_sessionmaker(engine))
    await engine.dispose()
    await sign_in(page, Role.viewer, to=f"/runs/{journey_id}")
    await expect(page.locator(".run-step")).to_have_count(4)
    violations = await _axe(page)
    assert not violations, _report("a run's page", violations)
    await page.get_by_role("link", name="Show on canvas").click()
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    await expect(page.locator(".node-visited")).to_have_count(4)
    await expect(page.locator("#node-other")).not_to_have_class("node-visited")
    await expect(page.locator(".edge-taken")).to_have_count(3)
    await expect(page.locator("#run-note")).to_contain_text(f"The path of run {journey_id}")
    await page.get_by_role("button", name="Hide the path").click()
    await expect(page.locator(".node-visited")).to_have_count(0)
    await expect(page.locator(".edge-taken")).to_have_count(0)
    await page.get_by_role("button", name="Show the path").click()
    await expect(page.locator(".node-visited")).to_have_count(4)
    violations = await _axe(page)
    assert not violations, _report("Show on canvas", violations)
