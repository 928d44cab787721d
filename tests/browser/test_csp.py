"""The admin pages under their Content-Security-Policy in Chromium: nothing is blocked.

Every ``securitypolicyviolation`` event (recorded by an init script, which the
page's policy does not govern) and every console message about the policy
fails the test, on every admin page and through the editor's htmx edits.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from playwright.async_api import ConsoleMessage, Page, expect

from backend.models import Role
from tests.browser.conftest import sign_in
from tests.browser.test_editor import _drop_from_palette

pytestmark = pytest.mark.browser

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.violatedDirective} ${event.blockedURI} ${event.sourceFile}:${event.lineNumber}`
  );
});
"""
PAGES = [
    "/flows",
    "/flows/new",
    "/contacts",
    "/forms",
    "/imports",
    "/imports/new",
    "/outbox",
    "/outbox/suppressions",
    "/tasks",
    "/runs",
    "/personalization",
    "/settings/users",
    "/settings/api-keys",
    "/settings/site-keys",
    "/settings/inbound",
    "/settings/node-types",
    "/settings/retention",
    "/settings/audit",
]


async def _violations(page: Page) -> list[str]:
    found = await page.evaluate("window.__cspViolations || []")
    return [str(v) for v in found]


async def test_the_admin_pages_run_under_the_csp_without_violations(page: Page) -> None:
    console: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            console.append(message.text)

    page.on("console", on_console)
    await page.add_init_script(RECORD_VIOLATIONS)
    await sign_in(page, Role.admin, through_form=True)  # the audit page lists it
    for path in PAGES:
        response = await page.goto(path)
        assert response is not None and response.ok, path
        policy = await response.header_value("content-security-policy") or ""
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert await _violations(page) == [], path

    # The editor: its scripts, htmx swaps and the step panel all run under the policy.
    await page.goto("/flows/new")
    await page.fill("#name", "Under the policy")
    await page.get_by_role("button", name="Create draft").click()
    await expect(page).to_have_url(re.compile(r"/flows/\d+/edit$"))  # a new flow opens its editor
    await expect(page.locator("#editor.editor-ready")).to_be_attached()
    await _drop_from_palette(page, "Test email", 300, 200)  # an htmx edit
    await expect(page.locator(".node")).to_have_count(1)
    await page.get_by_role("button", name="Test", exact=True).click()
    assert await _violations(page) == []
    assert console == []

    # The recorder works: an injected inline script is blocked and reported.
    await page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.__ran = true'; document.body.append(s); }"
    )
    # The report comes as an event after the script is refused. Polled from here: Playwright's
    # wait_for_function re-evaluates its predicate with eval, which this very policy refuses.
    deadline = time.monotonic() + 10
    while not await _violations(page) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert "script-src" in (await _violations(page))[0]
    assert await page.evaluate("window.__ran === undefined")
