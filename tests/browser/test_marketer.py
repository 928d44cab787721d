"""The marketer's experience in Chromium: navigation, pickers, Swedish, the canvas at a glance."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from backend.models import Role
from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser


async def test_creating_a_flow_lands_in_its_editor(page: Page) -> None:
    await sign_in(page, Role.marketer)
    await page.goto("/flows/new")
    await page.fill("#name", "Download follow-up")
    await page.get_by_role("button", name="Create draft").click()
    await expect(page).to_have_url(re.compile(r"/flows/\d+/edit$"))
    await expect(page.locator("#editor.editor-ready")).to_be_attached()


async def test_saving_a_new_form_moves_to_its_own_address(page: Page) -> None:
    await sign_in(page, Role.marketer)
    await page.goto("/forms/new")
    await page.fill("#name", "Whitepaper download")
    await page.get_by_role("button", name="Create form").click()
    await expect(page).to_have_url(re.compile(r"/forms/\d+$"))


async def test_every_page_has_a_favicon(page: Page) -> None:
    await sign_in(page, Role.marketer)
    icon = page.locator('head link[rel="icon"]')
    await expect(icon).to_have_count(1)
    href = await icon.get_attribute("href")
    assert href is not None
    assert (await page.request.get(href)).status == 200
    # Browsers that ignore the link ask for /favicon.ico anyway.
    assert (await page.request.get("/favicon.ico")).status == 200
