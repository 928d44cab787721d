"""Several steps at once in Chromium: box-select, move together, copy, paste into another flow."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from backend.models import Role
from tests.browser.conftest import sign_in
from tests.browser.test_editor import _center, _drag, _drop_from_palette

pytestmark = pytest.mark.browser


async def _new_flow(page: Page, name: str) -> str:
    await page.goto("/flows/new")
    await page.fill("#name", name)
    await page.get_by_role("button", name="Create draft").click()
    await page.wait_for_url("**/edit")
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    return page.url


async def test_box_select_move_together_and_paste_elsewhere(page: Page) -> None:
    await sign_in(page, Role.marketer)
    first = await _new_flow(page, "Source")
    await _drop_from_palette(page, "Test trigger", 150, 120)
    await expect(page.locator("#node-trigger")).to_be_visible()
    await _drop_from_palette(page, "Test email", 450, 120)
    await expect(page.locator("#node-email")).to_be_visible()
    await _drop_from_palette(page, "Test notify salesperson", 450, 420)
    await expect(page.locator("#node-notify")).to_be_visible()

    # Shift-drag a box around the top two steps.
    canvas = await page.locator("#canvas").bounding_box()
    assert canvas is not None
    await page.keyboard.down("Shift")
    await _drag(page, (canvas["x"] + 10, canvas["y"] + 40), (canvas["x"] + 700, canvas["y"] + 220))
    await page.keyboard.up("Shift")
    await expect(page.locator(".node.selected")).to_have_count(2)
    await expect(page.locator("#node-notify")).not_to_have_class(re.compile("selected"))

    # Dragging one of them moves both, in one saved edit.
    trigger_before = await page.locator("#node-trigger").get_attribute("style")
    notify_before = await page.locator("#node-notify").get_attribute("style")
    start = await _center(page.locator("#node-email .node-title"))
    await _drag(page, start, (start[0] + 60, start[1] + 80))
    await expect(page.locator("#editor-status .save-state")).to_have_text("Draft revision 4")
    assert await page.locator("#node-trigger").get_attribute("style") != trigger_before
    assert await page.locator("#node-notify").get_attribute("style") == notify_before

    # Copy them and paste into another flow.
    await page.keyboard.press("Control+c")
    await _new_flow(page, "Target")
    await page.locator("#canvas").click(position={"x": 20, "y": 20})
    await page.keyboard.press("Control+v")
    await expect(page.locator(".node")).to_have_count(2)
    await expect(page.locator('.edge[data-source="trigger"][data-target="email"]')).to_have_count(0)

    # Back in the first flow, Delete removes the selection.
    await page.goto(first)
    await page.keyboard.down("Shift")
    await page.locator("#node-trigger .node-title").click()
    await page.locator("#node-notify .node-title").click()
    await page.keyboard.up("Shift")
    await expect(page.locator(".node.selected")).to_have_count(2)
    await page.keyboard.press("Delete")
    await expect(page.locator(".node")).to_have_count(1)
    await expect(page.locator("#node-email")).to_be_visible()
