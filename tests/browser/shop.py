"""The two-origin setup of the personalization browser tests: Touchflow and a demo shop.

Two loopback servers: Touchflow (uvicorn, in-process executor, SMTP to a local
aiosmtpd) and a demo shop on another port (and the same shop on a third
origin, not allowed for the site key), so every snippet call is a real
cross-origin request checked against the site key. ``servers`` runs on SQLite,
``servers_on`` on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from playwright.async_api import Browser, Page
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
    SlotAssignment,
    Visitor,
)
from backend.personalization.sanitize import sanitize_html
from backend.personalization.verify import identify_secret, sign_identify_token
from backend.web.personalization.snippet import embed_code
from tests.backend.web.support import settings_for
from tests.browser.conftest import STARTUP_SECONDS, _free_port
from tests.runtime.conftest import Mailbox
from tests.support.stores import fresh_database, migrated_sqlite

SITE_KEY = "tfs_demo-shop"
DATABASES = ("sqlite", "postgresql")
WAIT_SECONDS = 15


@dataclass
class Servers:
    touchflow: str
    shop: str
    sessions: async_sessionmaker[AsyncSession]
    mailbox: Mailbox
    stranger: str  # the same page on a third origin, not allowed for the site key


SNIPPET = Path(__file__).parents[2] / "frontend" / "static" / "snippet" / "touchflow.js"
SECRET = settings_for("sqlite://").secret_key or ""
VICTIM = "victoria@example.com"
PRIVATE_OFFER = "Private offer for Victoria: code VIP-4242"
# The embed code's cap, longer than the product's 800 ms: on a loaded test machine the
# snippet itself may take longer than that to load, which is not what these tests judge.
HIDE_MS = 2500

# The embed code the Personalization page gives (inline anti-flicker, hashed snippet URL).
DEMO_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo shop</title>
{head}
{embed}
</head><body>
<div id="hero" data-touchflow-slot="hero"><h2>Default hero</h2></div>
<div id="offer" data-touchflow-slot="offer"><p>No offer</p></div>
<form data-touchflow-form method="post" action="{touchflow}/f/signup">
  <label>Email <input id="email" name="email" type="email"></label>
  <label>First name <input id="first_name" name="first_name"></label>
  <label><input type="checkbox" name="consent" value="on"> Email me</label>
  <input type="hidden" name="form_started_at" value="{started}">
  <button id="signup" type="submit">Sign up</button>
</form>
{body}
</body></html>
"""


def shop_page(touchflow: str, path: str) -> str:
    """The shop's pages; ``/signed`` is what its backend renders for a signed-in Victoria."""
    head = body = ""
    if path.startswith("/signed"):
        secret = identify_secret(SECRET, SITE_KEY)
        token = sign_identify_token(secret, {"email": VICTIM, "exp": int(time.time()) + 300})
        head = f'<script>window.touchflow = {{q: [["identify", {{token: "{token}"}}]]}};</script>'
    if path.startswith("/iframe"):
        body = (
            f'<iframe data-touchflow-form src="{touchflow}/f/signup?embed=1" title="Sign up"'
            ' style="width:100%;height:420px;border:0"></iframe>'
        )
    consent = ' data-consent="required"' if path.startswith("/ask") else ""
    digest = hashlib.sha256(SNIPPET.read_bytes()).hexdigest()[:16]
    # The embed code exactly as the Personalization page gives it.
    embed = embed_code(f"{touchflow}/snippet/{digest}/touchflow.js", SITE_KEY, hide_ms=HIDE_MS)
    embed = embed.removesuffix("></script>") + consent + "></script>"
    return DEMO_PAGE.format(
        touchflow=touchflow,
        embed=embed,
        started=f"{time.time() - 10:.0f}",
        head=head,
        body=body,
    )


def shop_server(touchflow: str) -> tuple[ThreadingHTTPServer, str]:
    class Shop(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = shop_page(touchflow, self.path).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Shop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@contextmanager
def serve(database_url: str) -> Iterator[Servers]:
    """Touchflow on ``database_url`` (migrated), the shop, and a third origin."""
    mailbox = Mailbox()
    smtp_port = _free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    port = _free_port()
    touchflow = f"http://127.0.0.1:{port}"
    settings = settings_for(
        database_url, base_url=touchflow, smtp_host="127.0.0.1", smtp_port=smtp_port
    )
    app = create_app(settings, run_executor=True)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="touchflow-p13n", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the app did not start for the personalization browser test")
        time.sleep(0.05)
    shop, shop_url = shop_server(touchflow)
    stranger, stranger_url = shop_server(touchflow)
    engine = create_engine(database_url)
    try:
        yield Servers(touchflow, shop_url, create_sessionmaker(engine), mailbox, stranger_url)
    finally:
        shop.shutdown()
        stranger.shutdown()
        server.should_exit = True
        thread.join(timeout=STARTUP_SECONDS)
        smtp.stop()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    database_url = migrated_sqlite(tmp_path / "touchflow.db")
    with serve(database_url) as servers:
        yield servers


@pytest.fixture(params=DATABASES)
async def servers_on(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Servers]:
    """``servers`` on SQLite and on PostgreSQL."""
    async with fresh_database(request.param, tmp_path) as database_url:
        with serve(database_url) as servers:
            yield servers
            await servers.sessions.kw["bind"].dispose()


async def add_content(servers: Servers, redirect: str = "/welcome") -> None:
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
                redirect_url=f"{servers.shop}{redirect}" if redirect else None,
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


async def eventually(check: object, what: str) -> None:
    """Poll ``check`` (an async callable returning bool) until true; the executor is async."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not await check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def visitor_row(servers: Servers, visitor_id: str) -> Visitor | None:
    async with servers.sessions() as db:
        return await db.get(Visitor, visitor_id)


async def owners(servers: Servers, visitor_id: str) -> list[int | None]:
    """Whose history each of this browser's events is in, oldest first."""
    async with servers.sessions() as db:
        rows = await db.scalars(
            select(Event.contact_id).where(Event.visitor_id == visitor_id).order_by(Event.id)
        )
        return list(rows)


async def has_events(servers: Servers, visitor_id: str, count: int) -> bool:
    return len(await owners(servers, visitor_id)) >= count


def text_of(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("the email has no text part")


async def add_victim(servers: Servers) -> int:
    """Victoria, with content a flow assigned to her alone."""
    async with servers.sessions() as db, db.begin():
        victim = Contact(email=VICTIM, first_name="Victoria", attributes={}, tags=[], consent={})
        db.add(victim)
        await db.flush()
        db.add(
            SlotAssignment(
                slot="offer",
                contact_id=victim.id,
                html=f"<p>{PRIVATE_OFFER}</p>",
                expires_at=datetime.now(UTC) + timedelta(days=1),
            )
        )
        return victim.id
