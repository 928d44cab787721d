"""Web personalization end to end in real Chromium, on a customer's page from another origin.

Two loopback servers: Touchflow (uvicorn, in-process executor, SMTP to a local
aiosmtpd) and a demo shop on another port, so every snippet call is a real
cross-origin request checked against the site key. The visitor arrives from
LinkedIn, sees the LinkedIn hero, signs up through the embedded form (the
double opt-in email arrives over SMTP), and on the next page is a known contact.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from litestar import Litestar
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.app import create_app
from backend.db import create_engine, create_sessionmaker
from backend.forms.definition import FormDefinition, FormField
from backend.forms.store import apply
from backend.models import (
    Audience,
    Contact,
    ContentBlock,
    ContentRule,
    ContentVariant,
    Event,
    Form,
    SiteKey,
    Visitor,
)
from backend.personalization.sanitize import sanitize_html
from tests.backend.web.support import settings_for
from tests.services import migrate
from tests.support.http import QuietHandler, serve
from tests.support.live import live_app
from tests.support.smtp import Mailbox, smtp_server

pytestmark = pytest.mark.browser

SITE_KEY = "tfs_demo-shop"
WAIT_SECONDS = 15


@dataclass
class Servers:
    touchflow: str
    shop: str
    sessions: async_sessionmaker[AsyncSession]
    mailbox: Mailbox


DEMO_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo shop</title>
<script async src="{touchflow}/static/snippet/touchflow.js"
  data-site-key="{key}" data-anti-flicker="2000"{consent}></script>
</head><body>
<div id="hero" data-touchflow-slot="hero"><h2>Default hero</h2></div>
<form data-touchflow-form method="post" action="{touchflow}/f/signup">
  <label>Email <input id="email" name="email" type="email"></label>
  <label>First name <input id="first_name" name="first_name"></label>
  <label><input type="checkbox" name="consent" value="on"> Email me</label>
  <input type="hidden" name="form_started_at" value="{started}">
  <button id="signup" type="submit">Sign up</button>
</form>
</body></html>
"""


def _shop(touchflow: str) -> type[QuietHandler]:
    class Shop(QuietHandler):
        def do_GET(self) -> None:
            body = DEMO_PAGE.format(
                touchflow=touchflow,
                key=SITE_KEY,
                started=f"{time.time() - 10:.0f}",
                consent=' data-consent="required"' if self.path.startswith("/ask") else "",
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Shop


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'touchflow.db'}"
    migration = threading.Thread(target=lambda: asyncio.run(migrate(database_url)))
    migration.start()
    migration.join()
    with ExitStack() as stack:
        mailbox, smtp_port = stack.enter_context(smtp_server(Mailbox()))

        def build(url: str) -> Litestar:
            settings = settings_for(
                database_url, base_url=url, smtp_host="127.0.0.1", smtp_port=smtp_port
            )
            return create_app(settings, run_executor=True)

        touchflow, _ = stack.enter_context(live_app(build, "touchflow-p13n"))
        shop = stack.enter_context(serve(_shop(touchflow)))
        sessions = create_sessionmaker(create_engine(database_url))
        yield Servers(touchflow, shop.url, sessions, mailbox)


async def _content(servers: Servers) -> None:
    async with servers.sessions() as db, db.begin():
        db.add(SiteKey(name="Demo shop", key=SITE_KEY, allowed_origins=[servers.shop]))
        block = ContentBlock(name="Hero", description="")
        db.add(block)
        await db.flush()
        linkedin = ContentVariant(
            block_id=block.id,
            key="linkedin",
            name="LinkedIn",
            # Cleaned as the marketer's page does on save: the script never reaches the shop.
            html=sanitize_html(
                '<h2 class="hero">Welcome, LinkedIn reader</h2><script>window.hacked=1</script>'
            ),
        )
        known = ContentVariant(
            block_id=block.id, key="known", name="Known", html="<h2>Good to see you again</h2>"
        )
        db.add_all([linkedin, known])
        await db.flush()
        db.add_all(
            [
                ContentRule(slot="hero", variant_id=known.id, priority=1, audience="known"),
                ContentRule(
                    slot="hero",
                    variant_id=linkedin.id,
                    priority=10,
                    utm_source="linkedin",
                    audience=Audience.anonymous.value,
                ),
            ]
        )
        form = Form(slug="signup")
        apply(
            form,
            FormDefinition(
                name="Sign up",
                fields=[
                    FormField(name="email", label="Email", type="email", target="email"),
                    FormField(name="first_name", label="First name", target="first_name"),
                ],
                consent_label="Email me",
                consent_channel="email",
                double_opt_in=True,
            ),
        )
        db.add(form)


@pytest.fixture
async def tab(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    context.set_default_timeout(WAIT_SECONDS * 1000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    await context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


async def _eventually(check: object, what: str) -> None:
    """Poll ``check`` (an async callable returning bool) until true; the executor is async."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not await check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_linkedin_visitor_signs_up_and_becomes_known(tab: Page, servers: Servers) -> None:
    await _content(servers)
    hero = tab.locator("#hero")

    await tab.goto(f"{servers.shop}/?utm_source=linkedin")
    await expect(hero).to_have_attribute("data-touchflow-variant", "linkedin")
    await expect(hero.locator("h2")).to_have_text("Welcome, LinkedIn reader")
    await expect(hero).to_be_visible()  # the anti-flicker style is gone
    assert await tab.evaluate("window.hacked") is None
    visitor_id = await tab.evaluate("touchflow.visitorId()")
    cookie = [c for c in await tab.context.cookies() if c["name"] == "tf_vid"]
    assert cookie and cookie[0]["value"] == visitor_id

    async def page_view_stored() -> bool:
        async with servers.sessions() as db:
            return (
                await db.scalar(select(Event.id).where(Event.visitor_id == visitor_id)) is not None
            )

    await _eventually(page_view_stored, "the anonymous page view")

    await tab.fill("#email", "lena@example.com")
    await tab.fill("#first_name", "Lena")
    await tab.check("input[name=consent]")
    await tab.click("#signup")
    await expect(tab.get_by_text("Almost done")).to_be_visible()

    await _eventually(
        lambda: asyncio.sleep(0, result=bool(servers.mailbox.subjects())),
        "the confirmation email",
    )
    [message] = servers.mailbox.messages
    assert message["To"] == "lena@example.com"
    assert message["Subject"] == "Please confirm your subscription"

    async with servers.sessions() as db:
        contact = await db.scalar(select(Contact).where(Contact.email == "lena@example.com"))
        visitor = await db.get(Visitor, visitor_id)
        types = list(
            await db.scalars(
                select(Event.type).where(Event.visitor_id == visitor_id).order_by(Event.id)
            )
        )
    assert contact is not None and visitor is not None
    assert visitor.contact_id == contact.id  # stitched by the form submission
    assert types == ["page.viewed"]

    await tab.goto(f"{servers.shop}/pricing")
    await expect(hero).to_have_attribute("data-touchflow-variant", "known")
    await expect(hero.locator("h2")).to_have_text("Good to see you again")

    async def known_page_view() -> bool:
        async with servers.sessions() as db:
            owners = await db.scalars(
                select(Event.contact_id).where(Event.type == "page.viewed").order_by(Event.id)
            )
            return list(owners) == [contact.id, contact.id]

    await _eventually(known_page_view, "the next page view counted for the contact")


async def test_no_cookie_and_no_tracking_until_consent(tab: Page, servers: Servers) -> None:
    await _content(servers)
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

    await _eventually(queued_events_sent, "the events queued before consent")


async def test_global_privacy_control_means_no_cookie(browser: Browser, servers: Servers) -> None:
    await _content(servers)
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
