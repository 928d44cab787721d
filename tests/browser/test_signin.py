"""The foundation in a real browser: sign in and land on the (empty) flows page."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from backend.models import Role
from tests.browser.conftest import LiveServer, _leave_as_new, sign_in

pytestmark = pytest.mark.browser


async def test_sign_in_leads_to_an_empty_flows_page(page: Page) -> None:
    await page.goto("/flows")
    await page.wait_for_url("**/login?next=/flows")
    await expect(page.locator("h1")).to_have_text("Sign in to Touchflow")
    await page.fill("#email", "admin@example.com")
    await page.fill("#password", "wrong password")
    await page.click("button[type=submit]")
    await expect(page.locator("#login-error")).to_be_visible()
    await sign_in(page, Role.admin, through_form=True)
    await expect(page.locator("h1")).to_have_text("Flows")
    await expect(page.get_by_text("No flows yet")).to_be_visible()
    await expect(page.get_by_role("link", name="Create your first flow")).to_be_visible()


async def test_each_test_gets_a_signed_out_tab_and_a_role_signs_in_by_its_cookie(
    page: Page, live_server: LiveServer
) -> None:
    """The shared context is left as new after a test (nothing signed in, nothing stored),
    and a later sign-in by the remembered cookie is that role's, on the reset tables."""
    await sign_in(page, Role.viewer, through_form=True)
    await page.evaluate("() => { localStorage.setItem('k', 1); sessionStorage.setItem('k', 1); }")
    await _leave_as_new(page.context, live_server.url)
    assert page.is_closed()

    tab = await page.context.new_page()
    await tab.goto("/flows")
    await tab.wait_for_url("**/login?next=/flows")
    assert await tab.evaluate("() => localStorage.length + sessionStorage.length") == 0

    await live_server.reset()
    await sign_in(tab, Role.viewer)
    await expect(tab.locator(".me .badge-role")).to_have_text("Viewer")
    await expect(tab.locator(".me-name")).to_have_text("Viewer")
    await expect(tab.get_by_role("link", name="Settings")).to_have_count(0)
    await sign_in(tab, Role.admin, through_form=True)  # from another role's session
    await expect(tab.locator(".me .badge-role")).to_have_text("Admin")
    await sign_in(tab, Role.admin)  # by its cookie now
    await expect(tab.locator(".me .badge-role")).to_have_text("Admin")
    await sign_in(tab, Role.viewer)  # a role's cookie replaces another's
    await expect(tab.locator(".me .badge-role")).to_have_text("Viewer")
