"""Forms, contacts and CSV import in a real browser: the htmx paths people click through."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from backend.models import Role
from tests.browser.conftest import LiveServer, sign_in

pytestmark = pytest.mark.browser


async def test_marketer_builds_a_form_and_a_visitor_signs_up(
    page: Page, browser: Browser, live_server: LiveServer
) -> None:
    await sign_in(page, Role.marketer, to="/forms/new")
    await page.fill("#name", "Spring newsletter")
    await page.click("button[name=add_field]")
    await expect(page.locator("#field-2-label")).to_be_visible()
    await page.fill("#field-2-label", "City")
    await page.fill("#field-2-name", "city")
    await page.fill("#field-2-target", "attr:city")
    await page.select_option("#consent_channel", "email")
    await page.fill("#consent_label", "Send me the newsletter")
    await page.click("text=Create form")
    await page.wait_for_url("**/forms/*")
    await expect(page.locator("#embed-iframe")).to_contain_text("/f/spring-newsletter?embed=1")

    visitor = await browser.new_context(base_url=live_server.url)
    form = await visitor.new_page()
    await form.goto("/f/spring-newsletter")
    await form.fill("#tf-email", "not an email")
    await form.wait_for_timeout(2100)  # people take a moment; bots that post at once are ignored
    await form.get_by_role("button", name="Send").click()
    await expect(form.locator("#tf-email-error")).to_be_visible()
    await form.fill("#tf-email", "vera@example.com")
    await form.fill("#tf-city", "Lund")
    await form.check("input[name=consent]")
    await form.get_by_role("button", name="Send").click()
    await expect(form.get_by_role("status")).to_have_text("Thank you!")
    await visitor.close()

    await page.goto("/contacts")
    await page.fill("#filter-key", "city")
    await page.fill("#filter-value", "Lund")
    await page.click("#contact-filter button[type=submit]")
    await expect(page.locator("#contact-results")).to_contain_text("1 contact")
    await page.click("text=vera@example.com")
    await expect(page.locator("#timeline-title")).to_be_visible()
    await expect(page.locator("main")).to_contain_text("form.submitted")
    await expect(page.locator("main")).to_contain_text("form:spring-newsletter")


async def test_import_shows_progress_then_the_summary(page: Page, tmp_path: Path) -> None:
    csv_file = tmp_path / "people.csv"
    rows = "\n".join(f"p{n}@example.com,Person {n},Malmö" for n in range(1200))
    csv_file.write_text("email,first_name,city\n" + rows + "\nbroken,Nobody,Lund\n")
    await sign_in(page, Role.marketer, to="/imports/new")
    await page.set_input_files("#file", str(csv_file))
    await page.click("text=Upload and preview")
    await expect(page.locator("#import-job table")).to_contain_text("p0@example.com")
    await expect(page.locator("#map-2")).to_have_value("attr:city")
    await page.click("text=Start the import")
    await expect(page.locator("#import-job")).to_contain_text("Import finished", timeout=60_000)
    await expect(page.locator("#import-job")).to_contain_text("1201 / 1201")
    await expect(page.get_by_role("link", name="Download the rejected rows")).to_be_visible()


async def test_admin_erases_a_contact_after_confirming(page: Page) -> None:
    await sign_in(page, Role.admin, to="/imports/new")
    csv_file_text = "email,first_name\nerase.me@example.com,Eric\n"
    await page.set_input_files(
        "#file",
        files=[{"name": "one.csv", "mimeType": "text/csv", "buffer": csv_file_text.encode()}],
    )
    await page.click("text=Upload and preview")
    await page.click("text=Start the import")
    await expect(page.locator("#import-job")).to_contain_text("Import finished", timeout=30_000)
    await page.goto("/contacts")
    await page.click("text=Eric")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.click("text=Erase (GDPR)")
    await page.wait_for_url("**/contacts")
    await expect(page.locator("main")).not_to_contain_text("erase.me@example.com")
