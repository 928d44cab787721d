"""The decision endpoint: rules by UTM and audience, assignments, isolation between visitors."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, ContentRule, SiteKey, SlotAssignment, Visitor
from tests.backend.personalization.conftest import ORIGIN, VISITOR, Post, Shop
from tests.backend.web.support import MovableClock

LINKEDIN_PAGE = {"url": "https://shop.example.com/?utm_source=linkedin", "title": "Shop"}
PLAIN_PAGE = {"url": "https://shop.example.com/pricing", "title": "Pricing"}


async def test_linkedin_visitor_gets_the_linkedin_variant(snippet: Post, shop: Shop) -> None:
    response = await snippet("decide", slots=["hero", "footer"], page=LINKEDIN_PAGE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["slots"] == {
        "hero": {"html": "<h2>Hi LinkedIn</h2>", "variant": "linkedin", "source": "rule"}
    }
    assert body["known"] is False
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["cache-control"] == "no-store"


async def test_remembered_utm_counts_on_later_pages(snippet: Post, shop: Shop) -> None:
    plain = await snippet("decide", slots=["hero"], page=PLAIN_PAGE)
    assert plain.json()["slots"] == {}
    remembered = await snippet(
        "decide", slots=["hero"], page=PLAIN_PAGE, utm={"utm_source": "LinkedIn"}
    )
    assert remembered.json()["slots"]["hero"]["variant"] == "linkedin"


async def test_known_visitor_gets_the_known_variant(
    snippet: Post, shop: Shop, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as db, db.begin():
        contact = Contact(email="ada@example.com", attributes={}, tags=[], consent={})
        db.add(contact)
        await db.flush()
        db.add(Visitor(id=VISITOR, site_key_id=shop.site_id, contact_id=contact.id, traits={}))
    body = (await snippet("decide", slots=["hero"], page=LINKEDIN_PAGE)).json()
    assert body["known"] is True
    assert body["slots"]["hero"]["variant"] == "known"


async def test_url_patterns_pick_pages(
    snippet: Post, shop: Shop, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as db, db.begin():
        db.add(
            ContentRule(slot="banner", variant_id=shop.variants["known"], url_pattern="/pricing*")
        )
    assert (await snippet("decide", slots=["banner"], page=PLAIN_PAGE)).json()["slots"]
    home = {"url": "https://shop.example.com/", "title": "Home"}
    assert (await snippet("decide", slots=["banner"], page=home)).json()["slots"] == {}


async def test_assignment_beats_rules_until_it_expires(
    snippet: Post, shop: Shop, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    async with sessions() as db, db.begin():
        db.add(Visitor(id=VISITOR, site_key_id=shop.site_id, traits={}))
        await db.flush()
        db.add(
            SlotAssignment(
                slot="hero",
                visitor_id=VISITOR,
                html="<p>Your offer</p>",
                expires_at=clock.now() + timedelta(hours=1),
            )
        )
    chosen = (await snippet("decide", slots=["hero"], page=LINKEDIN_PAGE)).json()["slots"]
    assert chosen["hero"]["html"] == "<p>Your offer</p>"
    assert chosen["hero"]["source"] == "assignment"
    clock.advance(hours=2)
    chosen = (await snippet("decide", slots=["hero"], page=LINKEDIN_PAGE)).json()["slots"]
    assert chosen["hero"]["variant"] == "linkedin"


async def test_a_visitor_reads_only_its_own_content(
    snippet: Post, shop: Shop, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    other = "v-someone-else-0001"
    async with sessions() as db, db.begin():
        db.add(Visitor(id=other, site_key_id=shop.site_id, traits={}))
        await db.flush()
        db.add(
            SlotAssignment(
                slot="hero",
                visitor_id=other,
                html="<p>Secret offer</p>",
                expires_at=clock.now() + timedelta(days=1),
            )
        )
    mine = (await snippet("decide", slots=["hero"], page=PLAIN_PAGE)).json()
    assert mine["slots"] == {}
    theirs = (await snippet("decide", slots=["hero"], page=PLAIN_PAGE, vid=other)).json()
    assert theirs["slots"]["hero"]["html"] == "<p>Secret offer</p>"


async def test_a_visitor_of_another_site_is_a_stranger(
    snippet: Post, shop: Shop, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    async with sessions() as db, db.begin():
        elsewhere = SiteKey(name="Other", key="tfs_other", allowed_origins=["https://x.test"])
        db.add(elsewhere)
        await db.flush()
        db.add(Visitor(id=VISITOR, site_key_id=elsewhere.id, traits={}))
        await db.flush()
        db.add(
            SlotAssignment(
                slot="hero",
                visitor_id=VISITOR,
                html="<p>Other site</p>",
                expires_at=clock.now() + timedelta(days=1),
            )
        )
    chosen = (await snippet("decide", slots=["hero"], page=PLAIN_PAGE)).json()["slots"]
    assert chosen == {}
