"""Page views and custom events from the snippet: visitors, anonymous flows, web content."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Event, Journey, OutboxMessage, SlotAssignment, Visitor
from runtime.engine import Runtime
from tests.backend.personalization.conftest import VISITOR, Post, Shop
from tests.backend.personalization.flows import block_graph, publish_offer_flow
from tests.backend.web.support import MovableClock

LANDING = {
    "url": "https://shop.example.com/?utm_source=linkedin&utm_campaign=spring",
    "title": "Shop",
    "referrer": "https://www.linkedin.com/",
}


async def test_page_view_records_the_visitor_and_its_campaign(
    snippet: Post, shop: Shop, sessions: async_sessionmaker[AsyncSession]
) -> None:
    response = await snippet("events", type="page.viewed", page=LANDING, id="evt-00000001")
    assert response.status_code == 202, response.text
    again = await snippet("events", type="page.viewed", page=LANDING, id="evt-00000001")
    assert again.json()["duplicate"] is True
    async with sessions() as db:
        visitor = await db.get(Visitor, VISITOR)
        events = list(await db.scalars(select(Event)))
    assert visitor is not None and visitor.site_key_id == shop.site_id
    assert visitor.traits["utm_source"] == "linkedin"
    assert visitor.traits["landing_url"] == LANDING["url"]
    [event] = events
    assert (event.type, event.visitor_id, event.contact_id) == ("page.viewed", VISITOR, None)
    assert event.properties["utm_campaign"] == "spring"
    assert event.properties["path"] == "/"
    assert event.source == "web"


async def test_custom_events_keep_their_properties(
    snippet: Post, shop: Shop, sessions: async_sessionmaker[AsyncSession]
) -> None:
    response = await snippet(
        "events", type="video.played", properties={"video": "demo"}, page=LANDING
    )
    assert response.status_code == 202
    async with sessions() as db:
        event = await db.scalar(select(Event))
    assert event is not None and event.type == "video.played"
    assert event.properties["video"] == "demo"
    assert event.properties["utm_source"] == "linkedin"


async def test_page_view_starts_an_anonymous_flow_that_shows_content(
    worker: Runtime,
    snippet: Post,
    shop: Shop,
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
) -> None:
    await publish_offer_flow(worker)
    plain = {"url": "https://shop.example.com/blog", "title": "Blog"}
    await snippet("events", type="page.viewed", page=plain)  # no campaign: no journey
    await snippet("events", type="page.viewed", page=LANDING)
    async with sessions() as db:
        [journey] = list(await db.scalars(select(Journey)))
    assert (journey.visitor_id, journey.contact_id) == (VISITOR, None)
    await worker.drain()
    offer = await snippet("decide", slots=["offer"], page=plain)
    assert offer.json()["slots"] == {}  # still waiting a day
    clock.advance(days=1, minutes=1)
    await worker.drain()
    async with sessions() as db:
        message = await db.scalar(select(OutboxMessage))
        assignment = await db.scalar(select(SlotAssignment))
    assert message is not None and message.status == "sent", message and message.last_error
    assert assignment is not None and assignment.visitor_id == VISITOR
    chosen = (await snippet("decide", slots=["offer"], page=plain)).json()["slots"]["offer"]
    assert chosen["html"] == "<p>10% off</p>"  # the script is gone
    assert chosen["source"] == "assignment"


async def test_a_flow_can_show_a_block_from_the_library(
    worker: Runtime, snippet: Post, shop: Shop, clock: MovableClock
) -> None:
    await publish_offer_flow(worker, block_graph(shop.block_id))
    await snippet("events", type="page.viewed", page=LANDING)
    await worker.drain()
    clock.advance(days=1, minutes=1)
    await worker.drain()
    plain = {"url": "https://shop.example.com/blog", "title": "Blog"}
    chosen = (await snippet("decide", slots=["offer"], page=plain)).json()["slots"]["offer"]
    # The block's first variant, with its (already clean) HTML.
    assert (chosen["variant"], chosen["html"]) == ("linkedin", "<h2>Hi LinkedIn</h2>")
