"""Claims and proofs: what a browser's own word gets, browser-made contacts, erasure."""

from __future__ import annotations

import re
from datetime import timedelta

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.contacts.privacy import erase_contact
from backend.models import Contact, ContentBlock, ContentVariant, Event, Role, SiteKey, Visitor
from backend.personalization.delivery import WebContentDeliverer
from backend.personalization.verify import sign_identify_token
from backend.ratelimit import MemoryRateLimiter
from runtime.delivery import Outgoing
from tests.backend.personalization.conftest import VISITOR, Post, Shop, identify_token
from tests.backend.personalization.test_security import personalizer_of
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import MovableClock, post_form

PAGE = {"url": "https://shop.example.com/pricing", "title": "Pricing"}
VICTIM = "victoria@example.com"


async def _victim(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as db, db.begin():
        contact = Contact(email=VICTIM, first_name="Victoria", attributes={}, tags=[], consent={})
        db.add(contact)
        await db.flush()
        return contact.id


async def _assign(
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
    contact_id: int,
    slot: str,
    variant_id: int,
) -> None:
    message = Outgoing(
        id=1,
        idempotency_key=f"show:{slot}",
        channel="web_content",
        payload={
            "slot": slot,
            "variant_id": variant_id,
            "contact_id": contact_id,
            "expires_at": (clock.now() + timedelta(days=1)).isoformat(),
        },
    )
    await WebContentDeliverer(sessions, clock).deliver(message)


async def _safe_block(sessions: async_sessionmaker[AsyncSession]) -> int:
    """A block with no personal data, marked safe to show on a claim."""
    async with sessions() as db, db.begin():
        block = ContentBlock(name="Members' sale", description="", show_on_claim=True)
        db.add(block)
        await db.flush()
        variant = ContentVariant(block_id=block.id, key="sale", name="Sale", html="<p>Sale</p>")
        db.add(variant)
        await db.flush()
        return variant.id


async def test_a_hijack_by_email_gets_only_content_marked_safe(
    snippet: Post, shop: Shop, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    victim = await _victim(sessions)
    async with sessions() as db, db.begin():
        private = ContentVariant(
            block_id=shop.block_id, key="vip", name="VIP", html="<p>Private offer VIP-4242</p>"
        )
        db.add(private)
        await db.flush()
    await _assign(sessions, clock, victim, "offer", private.id)
    await _assign(sessions, clock, victim, "banner", await _safe_block(sessions))

    claimed = await snippet("identify", email=VICTIM, page=PAGE)
    assert claimed.json() == {"identified": True, "verified": False}
    decided = (await snippet("decide", slots=["offer", "banner", "hero"], page=PAGE)).json()
    assert decided["known"] is False
    assert set(decided["slots"]) == {"banner"}  # the safe one; no VIP code, no known variant
    assert "VIP-4242" not in str(decided)
    await snippet("events", type="page.viewed", page=PAGE)
    async with sessions() as db:
        theirs = await db.scalar(select(Event.id).where(Event.contact_id == victim))
    assert theirs is None


async def test_browser_made_contacts_are_limited_per_address_and_key(
    app: Litestar, snippet: Post, shop: Shop, sessions: async_sessionmaker[AsyncSession]
) -> None:
    app.state.rate_limiter = MemoryRateLimiter()
    app.state.settings.browser_contacts_per_address = 2
    codes = [
        (await snippet("identify", email=f"new{n}@example.com", page=PAGE)).status_code
        for n in range(3)
    ]
    assert codes == [200, 200, 429]
    await _victim(sessions)  # an existing contact may still be claimed: nothing is created
    assert (await snippet("identify", email=VICTIM, page=PAGE)).status_code == 200
    async with sessions() as db:
        made = list(await db.scalars(select(Contact.email).order_by(Contact.id)))
    assert made == ["new0@example.com", "new1@example.com", VICTIM]

    app.state.settings.browser_contacts_per_address = 100
    app.state.settings.browser_contacts_per_site_key = 2  # two already made this hour
    limited = await snippet("identify", email="new9@example.com", page=PAGE)
    assert limited.status_code == 429
    assert "Too many new contacts" in limited.json()["error"]["message"]


async def test_a_site_key_can_forbid_browser_made_contacts(
    app: Litestar,
    client: AsyncTestClient[Litestar],
    snippet: Post,
    shop: Shop,
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
) -> None:
    async with sessions() as db, db.begin():
        await db.execute(update(SiteKey).values(allow_browser_contacts=False))
    personalizer_of(client).forget()
    answer = await snippet("identify", email="stranger@example.com", page=PAGE)
    # The same answer as any claim: the browser cannot tell whether the address is known.
    assert answer.json() == {"identified": True, "verified": False}
    async with sessions() as db:
        assert await db.scalar(select(Contact.id)) is None
    # The site's backend may still vouch for a new person.
    token = identify_token(app, clock, external_id="shop-42", email="new@example.com")
    assert (await snippet("identify", token=token, page=PAGE)).json()["verified"] is True
    async with sessions() as db:
        contact = await db.scalar(select(Contact))
    assert contact is not None and (contact.external_id, contact.email) == (
        "shop-42",
        "new@example.com",
    )


async def test_erasure_forgets_the_browser(
    app: Litestar,
    snippet: Post,
    shop: Shop,
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
) -> None:
    victim = await _victim(sessions)
    await snippet("events", type="page.viewed", page=PAGE)
    await snippet("identify", token=identify_token(app, clock, email=VICTIM), page=PAGE)
    assert (await snippet("decide", slots=["hero"], page=PAGE)).json()["known"] is True
    async with sessions() as db, db.begin():
        contact = await db.get(Contact, victim)
        assert contact is not None
        await erase_contact(db, contact)

    decided = (await snippet("decide", slots=["hero"], page=PAGE)).json()
    assert decided["known"] is False and decided["slots"] == {}
    assert decided["vid"] != VISITOR  # the snippet starts over as a new visitor
    later = await snippet("events", type="page.viewed", page={"url": PAGE["url"] + "?secret=1"})
    renewed = later.json()["vid"]
    assert renewed != VISITOR
    async with sessions() as db:
        old = await db.get(Visitor, VISITOR)
        new = await db.get(Visitor, renewed)
        events = list(await db.scalars(select(Event).order_by(Event.id)))
    assert old is not None and old.forgotten_at is not None
    assert (old.contact_id, old.claimed_contact_id, old.traits) == (None, None, {})
    assert new is not None and new.contact_id is None
    assert [(e.contact_id, e.visitor_id) for e in events] == [(victim, None), (None, renewed)]
    assert events[0].properties == {}
    refused = await snippet("identify", email=VICTIM, page=PAGE)
    assert refused.status_code == 409


async def test_admins_see_the_identify_secret_and_can_forbid_browser_contacts(
    signed_in: SignedIn,
    snippet: Post,
    shop: Shop,
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
) -> None:
    client = await signed_in(Role.admin)
    page = (await client.get("/settings/site-keys")).text
    secret = re.search(r"<code>(tfi_[A-Za-z0-9_-]+)</code>", page)
    assert secret is not None
    # A token signed with the secret the page shows is what the shop's backend sends.
    token = sign_identify_token(
        secret.group(1), {"email": "ada@example.com", "exp": clock.now().timestamp() + 60}
    )
    assert (await snippet("identify", token=token, page=PAGE)).json()["verified"] is True

    changed = await post_form(
        client,
        f"/settings/site-keys/{shop.site_id}",
        {"origins": "https://shop.example.com", "contacts_field": "1"},
        htmx=True,
    )
    assert changed.status_code == 200
    async with sessions() as db:
        key = await db.get(SiteKey, shop.site_id)
    assert key is not None and key.allow_browser_contacts is False
    await snippet("identify", email="someone@example.com", page=PAGE)
    async with sessions() as db:
        emails = list(await db.scalars(select(Contact.email)))
    assert emails == ["ada@example.com"]  # the browser's claim created no one
