"""A form is a claim: typed with a known contact's address, it shows and writes nothing of
theirs until proven; the double opt-in confirmation proves it whatever the redirect.

Real Chromium on two loopback origins (the shop and Touchflow), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from backend.models import Contact, Event, Visitor
from tests.browser.shop import (
    PRIVATE_OFFER,
    VICTIM,
    WAIT_SECONDS,
    Servers,
    add_content,
    add_victim,
    eventually,
    servers_on,
    tab,
    text_of,
)

pytestmark = pytest.mark.browser
__all__ = ["servers_on", "tab"]  # the fixtures of tests/browser/shop.py


async def _form_events(servers: Servers, contact_id: int) -> list[Event]:
    async with servers.sessions() as db:
        return list(
            await db.scalars(
                select(Event).where(Event.contact_id == contact_id, Event.type == "form.submitted")
            )
        )


async def _sign_up(page: Page, servers: Servers, email: str, first_name: str) -> str:
    """Send the shop's embedded form; the browser's visitor id."""
    await page.goto(f"{servers.shop}/")
    await expect(page.locator("#hero")).to_be_visible()
    visitor_id = str(await page.evaluate("touchflow.visitorId()"))
    await page.fill("#email", email)
    await page.fill("#first_name", first_name)
    await page.check("input[name=consent]")
    await page.click("#signup")
    await page.wait_for_load_state()
    return visitor_id


async def _confirmation_link(servers: Servers, to: str) -> str:
    async def arrived() -> bool:
        return any(m["To"] == to for m in servers.mailbox.messages)

    await eventually(arrived, f"the confirmation email to {to}")
    [message] = [m for m in servers.mailbox.messages if m["To"] == to]
    link = re.search(r"(http://\S+/f/confirm\?token=\S+)", text_of(message))
    assert link is not None
    return link.group(1)


async def test_a_form_with_someone_elses_address_is_only_a_claim(
    tab: Page, browser: Browser, servers_on: Servers
) -> None:
    servers = servers_on
    await add_content(servers)
    victim = await add_victim(servers)
    attacker = await _sign_up(tab, servers, VICTIM, "Mallory")
    await tab.wait_for_url(f"{servers.shop}/welcome")

    # The form's flow still reaches the address's owner: the confirmation goes out.
    link = await _confirmation_link(servers, VICTIM)
    [event] = await _form_events(servers, victim)
    assert event.claimed and event.visitor_id == attacker
    async with servers.sessions() as db:
        contact = await db.get(Contact, victim)
        visitor = await db.get(Visitor, attacker)
        verified_history = await db.scalar(
            select(Event.id).where(Event.contact_id == victim, Event.claimed.is_(False))
        )
    assert contact is not None and contact.first_name == "Victoria"  # no field changed
    assert contact.consent == {}  # consent waits for the confirmation
    assert verified_history is None
    assert visitor is not None and (visitor.contact_id, visitor.claimed_contact_id) == (
        None,
        victim,
    )
    await tab.goto(f"{servers.shop}/account")
    await expect(tab.locator("#offer")).to_have_text("No offer")
    assert PRIVATE_OFFER not in await tab.content()

    # Victoria confirms from her own browser: the submission is proven (it becomes her
    # history, the fields it held apply), the browser that typed it is not.
    context = await browser.new_context()
    context.set_default_timeout(WAIT_SECONDS * 1000)
    own = await context.new_page()
    try:
        await own.goto(link)
        await own.get_by_role("button").click()
        await own.wait_for_url(f"{servers.shop}/welcome*")
    finally:
        await context.close()
    [event] = await _form_events(servers, victim)
    assert not event.claimed and "pending_profile" not in event.properties
    async with servers.sessions() as db:
        contact = await db.get(Contact, victim)
        visitor = await db.get(Visitor, attacker)
    assert contact is not None and contact.first_name == "Mallory"
    assert contact.consent["email"]["granted"] is True
    assert visitor is not None and visitor.contact_id is None
    await tab.goto(f"{servers.shop}/account")
    await expect(tab.locator("#offer")).to_have_text("No offer")


async def test_confirming_in_the_same_browser_verifies_it_whatever_the_redirect(
    tab: Page, servers_on: Servers
) -> None:
    servers = servers_on
    # The form sends people to a site that is no site key's: no proof can ride the redirect.
    await add_content(servers, redirect="")
    victim = await add_victim(servers)
    visitor_id = await _sign_up(tab, servers, VICTIM, "Vicky")
    await expect(tab.get_by_text("Almost done")).to_be_visible()
    link = await _confirmation_link(servers, VICTIM)
    await tab.goto(f"{servers.shop}/account")
    await expect(tab.locator("#offer")).to_have_text("No offer")

    await tab.goto(link)
    await tab.get_by_role("button").click()
    await expect(tab.get_by_text("Your subscription is confirmed.")).to_be_visible()
    # Back on the shop, the snippet's next call learns the browser is Victoria's.
    await tab.goto(f"{servers.shop}/account")
    await expect(tab.locator("#offer")).to_have_text(PRIVATE_OFFER)
    await expect(tab.locator("#hero")).to_have_attribute("data-touchflow-variant", "known")
    async with servers.sessions() as db:
        visitor = await db.get(Visitor, visitor_id)
        contact = await db.get(Contact, victim)
    assert visitor is not None and visitor.contact_id == victim
    assert contact is not None and contact.first_name == "Vicky"
    [event] = await _form_events(servers, victim)
    assert not event.claimed
