"""Test mode in Chromium: run a test customer and see their path marked on the canvas."""

from __future__ import annotations

import json

import pytest
from playwright.async_api import Page, expect

from backend.db import create_engine, create_sessionmaker
from backend.models import Role
from runtime.flows import create_flow
from tests.browser.conftest import LiveServer, sign_in
from tests.runtime.nodes import canonical_graph

pytestmark = pytest.mark.browser


async def test_the_path_is_marked_on_the_canvas(page: Page, live_server: LiveServer) -> None:
    engine = create_engine(live_server.database_url)
    async with create_sessionmaker(engine)() as db, db.begin():
        flow = await create_flow(db, "Tested", graph=canonical_graph())
    await engine.dispose()
    await sign_in(page, Role.viewer, to=f"/flows/{flow.id}/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    await page.get_by_role("button", name="Test", exact=True).click()
    events = [{"type": "form.submitted"}, {"type": "email.opened", "after_hours": 3}]
    await page.fill("#test-events", json.dumps(events))
    await page.get_by_role("button", name="Run the test").click()
    await expect(page.locator(".test-steps li")).to_have_count(7)
    await expect(page.locator(".node-visited")).to_have_count(5)
    await expect(page.locator("#node-reminder")).not_to_have_class("node node-visited")
    await expect(page.locator(".edge-taken")).to_have_count(4)
    await expect(page.locator("#panel .notice")).to_have_text(
        "The journey completes: nothing follows this step."
    )
