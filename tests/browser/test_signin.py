"""The foundation in a real browser: sign in and land on the (empty) flows page."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from backend.models import Role
from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser


async def test_sign_in_leads_to_an_empty_flows_page(page: Page) -> None:
    await page.goto("/flows")
    await page.wait_for_url("**/login?next=/flows")
    await expect(page.locator("h1")).to_have_text("Sign in to Touchflow")
    await page.fill("#email", "admin@example.com")
    await page.fill("#password", "wrong password")
    await page.click("button[type=submit]")
    await expect(page.locator("#login-error")).to_be_visible()
    await sign_in(page, Role.admin)
    await expect(page.locator("h1")).to_have_text("Flows")
    await expect(page.get_by_text("No flows yet")).to_be_visible()
    await expect(page.get_by_role("link", name="Create your first flow")).to_be_visible()
