"""The form editor in Chromium: a compact field list beside the chosen field's settings and a
live preview; reorder by drag and by keyboard, add, remove; a new form moves to its own address."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from backend.models import Role
from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser


async def test_fields_list_settings_and_live_preview_side_by_side(page: Page) -> None:
    await sign_in(page, Role.marketer, to="/forms/new")
    await page.fill("#name", "Whitepaper")
    fields = page.locator("#field-list .field-pick")
    await expect(fields).to_have_count(2)
    await expect(fields.nth(0)).to_contain_text("Email")
    # The chosen field's settings only, beside the list; the preview beside those on a wide screen.
    await expect(page.locator("#field-row-0")).to_be_visible()
    await expect(page.locator("#field-row-1")).to_be_hidden()
    listing = await page.locator(".fe-fields").bounding_box()
    settings = await page.locator(".fe-settings").bounding_box()
    shown = await page.locator(".fe-preview").bounding_box()
    assert listing and settings and shown
    assert listing["x"] + listing["width"] <= settings["x"]
    assert settings["x"] + settings["width"] <= shown["x"]
    assert abs(listing["y"] - settings["y"]) < 2 and abs(settings["y"] - shown["y"]) < 2
    assert shown["x"] + shown["width"] - listing["x"] > 1200, "a wide screen's width goes unused"

    # Choose the second field; typing its label shows in the list and the preview at once.
    await fields.nth(1).click()
    await expect(page.locator("#field-row-1")).to_be_visible()
    await expect(page.locator("#field-row-0")).to_be_hidden()
    await page.fill("#field-1-label", "Förnamn")
    preview = page.locator("#form-preview .preview-field")
    await expect(preview).to_have_text(["Email *", "Förnamn"])
    await expect(page.locator("#form-preview .choice")).to_have_text(
        "Yes, send me news and offers by email."
    )
    await expect(fields.nth(1)).to_contain_text("Förnamn")

    # Keyboard: "move up" puts Förnamn first, in the list and the preview.
    await page.get_by_role("button", name="Move Förnamn up").focus()
    await page.keyboard.press("Enter")
    await expect(fields).to_have_text([re.compile("^Förnamn"), re.compile("^Email")])
    await expect(preview).to_have_text(["Förnamn", "Email *"])

    # Add a field: it is chosen at once; then remove it again.
    await page.get_by_role("button", name="Add a field").click()
    await expect(fields).to_have_count(3)
    await expect(page.locator("#field-row-2")).to_be_visible()
    await page.fill("#field-2-label", "Företag")
    await page.fill("#field-2-name", "company")
    await expect(preview).to_have_text(["Förnamn", "Email *", "Företag"])
    await page.get_by_role("button", name="Remove Företag").click()
    await expect(fields).to_have_count(2)
    await expect(preview).to_have_text(["Förnamn", "Email *"])

    # Drag Email back above Förnamn.
    await (
        page.locator("#field-list .field-item")
        .nth(1)
        .drag_to(page.locator("#field-list .field-item").nth(0), target_position={"x": 20, "y": 2})
    )
    await expect(fields).to_have_text([re.compile("^Email"), re.compile("^Förnamn")])

    await page.get_by_role("button", name="Create form").click()
    await expect(page).to_have_url(re.compile(r"/forms/\d+$"))
    await page.reload()
    await expect(fields).to_have_text([re.compile("^Email"), re.compile("^Förnamn")])
    await expect(preview).to_have_text(["Email *", "Förnamn"])
