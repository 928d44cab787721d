"""Web personalization end to end in real Chromium, on a customer's page from another origin.

Two loopback servers: Touchflow (uvicorn, in-process executor, SMTP to a local
aiosmtpd) and a demo shop on another port, so every snippet call is a real
cross-origin request checked against the site key. The visitor arrives from
LinkedIn, sees the LinkedIn hero, signs up through the embedded form (the
double opt-in email arrives over SMTP), and on the next page is a known contact.
"""

from __future__ import annotations

import asyncio
import hashlib
import re

import httpx
import pytest
from playwright.async_api import Browser, Page, Route, expect
from sqlalchemy import select

from backend.models import Contact, Event
from tests.browser.shop import (
    HIDE_MS,
    PRIVATE_OFFER,
    SITE_KEY,
    SNIPPET,
    VICTIM,
    Servers,
    add_content,
    add_victim,
    eventually,
    has_events,
    owners,
    servers,
    tab,
    text_of,
    visitor_row,
)

pytestmark = pytest.mark.browser
__all__ = ["servers", "tab"]  # the fixtures of tests/browser/shop.py


async def test_linkedin_visitor_signs_up_and_the_emailed_link_verifies(
    tab: Page, servers: Servers
) -> None:
    await add_content(servers)
    hero = tab.locator("#hero")

    await tab.goto(f"{servers.shop}/?utm_source=linkedin")
    await expect(hero).to_have_attribute("data-touchflow-variant", "linkedin")
    await expect(hero.locator("h2")).to_have_text("Welcome, LinkedIn reader")
    await expect(hero).to_be_visible()  # the anti-flicker style is gone
    assert await tab.evaluate("window.hacked") is None
    visitor_id = await tab.evaluate("touchflow.visitorId()")
    cookie = [c for c in await tab.context.cookies() if c["name"] == "tf_vid"]
    assert cookie and cookie[0]["value"] == visitor_id
    await eventually(lambda: has_events(servers, visitor_id, 1), "the anonymous page view")

    await tab.fill("#email", "lena@example.com")
    await tab.fill("#first_name", "Lena")
    await tab.check("input[name=consent]")
    await tab.click("#signup")
    await tab.wait_for_url(f"{servers.shop}/welcome")
    await eventually(
        lambda: asyncio.sleep(0, result=bool(servers.mailbox.subjects())),
        "the confirmation email",
    )
    [message] = servers.mailbox.messages
    assert message["To"] == "lena@example.com"
    assert message["Subject"] == "Please confirm your subscription"

    # The sign-up is a claim: Lena's browser is not yet shown known content.
    async with servers.sessions() as db:
        contact = await db.scalar(select(Contact).where(Contact.email == "lena@example.com"))
    visitor = await visitor_row(servers, visitor_id)
    assert contact is not None and visitor is not None
    assert (visitor.contact_id, visitor.claimed_contact_id) == (None, contact.id)
    await expect(hero).to_have_attribute("data-touchflow-variant", "linkedin")
    assert set(await owners(servers, visitor_id)) == {None}

    # She opens the link from the email in this browser: confirmed, and back on the shop
    # the link's proof verifies the browser; the whole visit becomes hers.
    link = re.search(r"(http://\S+/f/confirm\?token=\S+)", text_of(message))
    assert link is not None
    await tab.goto(link.group(1))
    await tab.get_by_role("button").click()
    await tab.wait_for_url(f"{servers.shop}/welcome*")
    await expect(hero).to_have_attribute("data-touchflow-variant", "known")
    await expect(hero.locator("h2")).to_have_text("Good to see you again")
    assert "tf_verify" not in tab.url  # the proof leaves the address bar
    visitor = await visitor_row(servers, visitor_id)
    assert visitor is not None and visitor.contact_id == contact.id

    async def all_hers() -> bool:
        found = await owners(servers, visitor_id)
        # The landing and the welcome page views, made before she was verified.
        return len(found) >= 2 and set(found) == {contact.id}

    await eventually(all_hers, "the anonymous history moved to the verified contact")


async def test_an_identity_hijack_reveals_and_records_nothing(tab: Page, servers: Servers) -> None:
    await add_content(servers)
    victim = await add_victim(servers)
    await tab.goto(f"{servers.shop}/")
    await expect(tab.locator("#hero")).to_be_visible()
    answer = await tab.evaluate(f"touchflow.identify({{email: '{VICTIM}'}})")
    assert answer == {"identified": True, "verified": False}
    await tab.goto(f"{servers.shop}/account")
    await expect(tab.locator("#offer")).to_be_visible()
    await expect(tab.locator("#offer")).to_have_text("No offer")
    assert PRIVATE_OFFER not in await tab.content()
    visitor_id = await tab.evaluate("touchflow.visitorId()")
    await eventually(lambda: has_events(servers, visitor_id, 2), "the attacker's page views")
    async with servers.sessions() as db:
        written = await db.scalar(select(Event.id).where(Event.contact_id == victim))
    assert written is None  # nothing in Victoria's history


async def test_a_signed_identify_completes_the_stitch(tab: Page, servers: Servers) -> None:
    await add_content(servers)
    victim = await add_victim(servers)
    await tab.goto(f"{servers.shop}/?utm_source=linkedin")
    await expect(tab.locator("#hero")).to_have_attribute("data-touchflow-variant", "linkedin")
    visitor_id = await tab.evaluate("touchflow.visitorId()")
    await eventually(lambda: has_events(servers, visitor_id, 1), "the anonymous page view")
    # She signs in on the shop; its backend renders a signed identify token into the page.
    await tab.goto(f"{servers.shop}/signed")
    await expect(tab.locator("#offer")).to_have_text(PRIVATE_OFFER)
    await expect(tab.locator("#hero")).to_have_attribute("data-touchflow-variant", "known")

    async def all_hers() -> bool:
        found = await owners(servers, visitor_id)
        return len(found) >= 2 and set(found) == {victim}

    await eventually(all_hers, "the anonymous history moved to Victoria")


async def test_the_iframe_embed_stitches(tab: Page, servers: Servers) -> None:
    await add_content(servers)
    await tab.goto(f"{servers.shop}/iframe")
    visitor_id = await tab.evaluate("touchflow.visitorId()")
    frame = tab.frame_locator("iframe[data-touchflow-form]")
    handed = frame.locator("input[name=visitor_id]")
    await expect(handed).to_have_value(visitor_id)  # from the snippet on the page
    await frame.locator("#tf-email").fill("iris@example.com")
    await asyncio.sleep(2.1)  # a person takes longer than the bot threshold
    await frame.get_by_role("button").click()

    async def claimed() -> bool:
        async with servers.sessions() as db:
            contact = await db.scalar(select(Contact.id).where(Contact.email == "iris@example.com"))
        visitor = await visitor_row(servers, visitor_id)
        return contact is not None and visitor is not None and visitor.claimed_contact_id == contact

    await eventually(claimed, "the iframe's submission linked to the visitor")


FRAMES = """
window.__slots = [];
(function sample() {
  var el = document.getElementById("hero");
  if (el) {
    var shown = getComputedStyle(el).visibility !== "hidden";
    var text = shown ? el.textContent.trim() : "";
    var last = window.__slots[window.__slots.length - 1];
    if (text !== last) window.__slots.push(text);
  }
  requestAnimationFrame(sample);
})();
"""


async def test_a_cold_load_never_shows_the_fallback_then_the_variant(
    browser: Browser, servers: Servers
) -> None:
    await add_content(servers)
    context = await browser.new_context()
    await context.add_init_script(FRAMES)

    async def slow_decide(route: Route) -> None:
        await asyncio.sleep(0.5)  # a slow network: the decision comes after first paint
        await route.continue_()

    await context.route("**/p/v1/decide", slow_decide)
    page = await context.new_page()
    try:
        await page.goto(f"{servers.shop}/?utm_source=linkedin")
        await expect(page.locator("#hero")).to_have_attribute("data-touchflow-variant", "linkedin")
        await page.wait_for_timeout(100)
        painted = [t for t in await page.evaluate("window.__slots") if t]
        assert painted == ["Welcome, LinkedIn reader"], painted

        # A repeat visit paints the remembered decision before the (slower) fresh one.
        await context.unroute("**/p/v1/decide")

        async def very_slow(route: Route) -> None:
            await asyncio.sleep(HIDE_MS / 1000 + 3)
            await route.continue_()

        await context.route("**/p/v1/decide", very_slow)
        await page.goto(f"{servers.shop}/?utm_source=linkedin")
        await expect(page.locator("#hero h2")).to_have_text("Welcome, LinkedIn reader")
        await expect(page.locator("#hero")).to_be_visible(timeout=HIDE_MS)
        painted = [t for t in await page.evaluate("window.__slots") if t]
        assert painted == ["Welcome, LinkedIn reader"], painted
    finally:
        await context.close()


async def test_snippet_is_compressed_and_a_third_origin_is_refused(
    tab: Page, servers: Servers
) -> None:
    await add_content(servers)
    url = f"{servers.touchflow}/snippet/{hashlib.sha256(SNIPPET.read_bytes()).hexdigest()[:16]}"
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{url}/touchflow.js", headers={"Accept-Encoding": "gzip"})
    assert answer.headers["content-encoding"] == "gzip"
    assert "immutable" in answer.headers["cache-control"]
    assert answer.content == SNIPPET.read_bytes()  # httpx undid the gzip
    assert int(answer.headers["content-length"]) < len(answer.content) / 2

    sent: list[str] = []
    answered: list[int] = []
    tab.on("request", lambda r: sent.append(r.url) if "/p/v1/" in r.url else None)
    tab.on("response", lambda r: answered.append(r.status) if "/p/v1/" in r.url else None)
    await tab.goto(f"{servers.stranger}/?utm_source=linkedin")
    await expect(tab.locator("#hero")).to_be_visible()  # the cap shows the page's own content
    await expect(tab.locator("#hero h2")).to_have_text("Default hero")
    await eventually(lambda: asyncio.sleep(0, result=len(sent) >= 2), "the snippet's calls")
    assert all(status == 403 for status in answered), answered
    async with httpx.AsyncClient() as http:
        direct = await http.post(
            f"{servers.touchflow}/p/v1/events",
            content=f'{{"key": "{SITE_KEY}", "vid": "v-0123456789abcdef"}}',
            headers={"Origin": servers.stranger, "Content-Type": "text/plain"},
        )
    assert direct.status_code == 403
    assert "not allowed for this site key" in direct.json()["error"]["message"]
    async with servers.sessions() as db:
        assert await db.scalar(select(Event.id)) is None


async def test_consent_after_landing_keeps_the_campaign(tab: Page, servers: Servers) -> None:
    await add_content(servers)
    await tab.goto(f"{servers.shop}/ask?utm_source=linkedin")
    await expect(tab.locator("#hero")).to_have_attribute("data-touchflow-variant", "linkedin")
    await tab.evaluate("touchflow.consent(true)")
    await tab.goto(f"{servers.shop}/pricing")  # no UTM in this address
    await expect(tab.locator("#hero")).to_have_attribute("data-touchflow-variant", "linkedin")


async def test_no_cookie_and_no_tracking_until_consent(tab: Page, servers: Servers) -> None:
    await add_content(servers)
    hero = tab.locator("#hero")
    sent: list[str] = []
    tab.on("request", lambda request: sent.append(request.url))
    await tab.goto(f"{servers.shop}/ask?utm_source=linkedin")
    # Decisions still work (they store nothing); the id lives in memory only.
    await expect(hero).to_have_attribute("data-touchflow-variant", "linkedin")
    assert [c for c in await tab.context.cookies() if c["name"] == "tf_vid"] == []
    assert await tab.evaluate("localStorage.getItem('tf_vid')") is None
    visitor_id = await tab.evaluate("touchflow.visitorId()")
    await tab.evaluate("touchflow.track('video.played', {video: 'demo'})")
    assert [url for url in sent if "/p/v1/" in url] == [f"{servers.touchflow}/p/v1/decide"]

    await tab.evaluate("touchflow.consent(true)")
    cookie = [c for c in await tab.context.cookies() if c["name"] == "tf_vid"]
    assert cookie and cookie[0]["value"] == visitor_id

    async def queued_events_sent() -> bool:
        async with servers.sessions() as db:
            rows = await db.scalars(
                select(Event.type).where(Event.visitor_id == visitor_id).order_by(Event.id)
            )
            return sorted(rows) == ["page.viewed", "video.played"]

    await eventually(queued_events_sent, "the events queued before consent")


async def test_global_privacy_control_means_no_cookie(browser: Browser, servers: Servers) -> None:
    await add_content(servers)
    context = await browser.new_context()
    await context.add_init_script(
        "Object.defineProperty(navigator, 'globalPrivacyControl', {get: () => true})"
    )
    page = await context.new_page()
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))
    try:
        await page.goto(f"{servers.shop}/?utm_source=linkedin")
        await expect(page.locator("#hero")).to_have_attribute("data-touchflow-variant", "linkedin")
        assert [c for c in await context.cookies() if c["name"] == "tf_vid"] == []
        assert [url for url in sent if "/p/v1/" in url] == [f"{servers.touchflow}/p/v1/decide"]
    finally:
        await context.close()
