"""Identity stitching: identify calls and form submissions link a visitor to a contact."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, Event, Journey, OutboxMessage, SlotAssignment, Visitor
from backend.personalization.stitch import MERGED, stitch
from backend.personalization.verify import LINK_PARAMETER
from runtime.engine import Runtime
from runtime.messaging.channels import link_signer
from tests.backend.personalization.conftest import ORIGIN, VISITOR, Post, Shop, identify_token
from tests.backend.personalization.flows import publish_offer_flow
from tests.backend.web.support import MovableClock
from tests.backend.web.test_forms import answers, make_form

LANDING = {"url": "https://shop.example.com/?utm_source=linkedin", "title": "Shop"}
PLAIN = {"url": "https://shop.example.com/pricing", "title": "Pricing"}


async def _contact(sessions: async_sessionmaker[AsyncSession], **values: str) -> int:
    async with sessions() as db, db.begin():
        contact = Contact(attributes={"plan": "pro"}, tags=["customer"], consent={}, **values)
        db.add(contact)
        await db.flush()
        return contact.id


async def _email_to(
    sessions: async_sessionmaker[AsyncSession], contact_id: int, clock: MovableClock
) -> int:
    """An email we sent the contact (its links are what the person clicks)."""
    async with sessions() as db, db.begin():
        message = OutboxMessage(
            idempotency_key=f"test:{contact_id}",
            channel="email",
            contact_id=contact_id,
            payload={"to": "x@example.com", "subject": "Hi", "text": "Hi"},
            status="sent",
            next_attempt_at=clock.now(),
        )
        db.add(message)
        await db.flush()
        return message.id


def sign_tracking(client: AsyncTestClient[Litestar], message_id: int, url: str) -> str:
    """The click token our email's link to ``url`` carries."""
    return link_signer(client.app.state.settings).dumps("click", {"m": message_id, "u": url})


async def _journeys(sessions: async_sessionmaker[AsyncSession]) -> list[Journey]:
    async with sessions() as db:
        return list(await db.scalars(select(Journey).order_by(Journey.id)))


async def test_a_claim_shows_and_records_nothing_until_a_signed_token_verifies_it(
    app: Litestar,
    snippet: Post,
    shop: Shop,
    worker: Runtime,
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
) -> None:
    await publish_offer_flow(worker)
    contact_id = await _contact(sessions, email="ada@example.com", first_name="Ada")
    await snippet("events", type="page.viewed", page=LANDING)
    await snippet("events", type="video.played", page=PLAIN)
    await worker.drain()  # the visitor's journey now waits a day
    [journey] = await _journeys(sessions)
    assert (journey.visitor_id, journey.status) == (VISITOR, "waiting")

    # The browser's own word: a claim. Nothing of Ada's shows, nothing lands in her history.
    response = await snippet("identify", email="ADA@example.com", first_name="Mallory", page=PLAIN)
    assert response.status_code == 200, response.text
    assert response.json() == {"identified": True, "verified": False}
    await snippet("events", type="page.viewed", page=PLAIN)
    decided = (await snippet("decide", slots=["hero"], page=PLAIN)).json()
    assert decided == {"slots": {}, "known": False}
    async with sessions() as db:
        visitor = await db.get(Visitor, VISITOR)
        events = list(await db.scalars(select(Event).order_by(Event.id)))
    assert visitor is not None
    assert (visitor.contact_id, visitor.claimed_contact_id) == (None, contact_id)
    assert [e.contact_id for e in events] == [None, None, None]
    [waiting] = await _journeys(sessions)
    assert waiting.contact_id is None

    # The shop's backend signs who is signed in: verified, the whole history moves.
    token = identify_token(app, clock, email="ada@example.com")
    response = await snippet("identify", token=token, page=PLAIN)
    assert response.json() == {"identified": True, "verified": True}
    async with sessions() as db:
        contact = await db.get(Contact, contact_id)
        visitor = await db.get(Visitor, VISITOR)
        events = list(await db.scalars(select(Event).order_by(Event.id)))
    assert contact is not None and contact.first_name == "Ada"  # not the anonymous claim
    assert (contact.attributes, contact.tags) == ({"plan": "pro"}, ["customer"])
    assert visitor is not None and visitor.contact_id == contact_id
    assert visitor.claimed_contact_id is None and visitor.stitched_at is not None
    assert [(e.type, e.contact_id, e.visitor_id) for e in events] == [
        ("page.viewed", contact_id, VISITOR),
        ("video.played", contact_id, VISITOR),
        ("page.viewed", contact_id, VISITOR),
    ]
    [moved] = await _journeys(sessions)
    assert (moved.id, moved.contact_id, moved.status) == (journey.id, contact_id, "waiting")
    assert moved.entry_key == f"{moved.flow_id}:c:{contact_id}"

    # Later page views are the contact's, and the known-contact variant shows.
    await snippet("events", type="page.viewed", page=PLAIN)
    async with sessions() as db:
        latest = await db.scalar(select(Event).order_by(Event.id.desc()).limit(1))
    assert latest is not None and latest.contact_id == contact_id
    decided = (await snippet("decide", slots=["hero"], page=LANDING)).json()
    assert decided["known"] is True
    assert decided["slots"]["hero"]["variant"] == "known"


async def test_a_forged_or_expired_token_is_refused(
    app: Litestar, snippet: Post, shop: Shop, clock: MovableClock
) -> None:
    good = identify_token(app, clock, email="ada@example.com")
    header, body, _mac = good.split(".")
    forged = f"{header}.{body}.{'A' * 43}"
    expired = identify_token(app, clock, email="ada@example.com", exp=1)
    for token in (forged, expired, "not-a-token"):
        response = await snippet("identify", token=token, page=PLAIN)
        assert response.status_code == 400, token
        assert "identity proof is not valid" in response.json()["error"]["message"]


async def test_a_contact_already_in_the_flow_is_not_doubled(
    app: Litestar,
    snippet: Post,
    shop: Shop,
    worker: Runtime,
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
) -> None:
    await publish_offer_flow(worker)
    contact_id = await _contact(sessions, email="ada@example.com", first_name="Ada")
    await worker.ingest("page.viewed", contact_id=contact_id, properties={"utm_source": "linkedin"})
    await snippet("events", type="page.viewed", page=LANDING)
    await worker.drain()
    theirs, visitors = await _journeys(sessions)
    assert (theirs.contact_id, visitors.visitor_id) == (contact_id, VISITOR)

    await snippet("identify", token=identify_token(app, clock, email="ada@example.com"))
    kept, merged = await _journeys(sessions)
    assert (kept.id, kept.status, kept.contact_id) == (theirs.id, "waiting", contact_id)
    assert (merged.id, merged.status, merged.exit_reason) == (visitors.id, "exited", MERGED)
    assert merged.contact_id == contact_id and merged.entry_key is None

    # Only the contact's journey goes on: one web content message, for the contact.
    clock.advance(days=1, minutes=1)
    await worker.drain()
    async with sessions() as db:
        assignments = list(await db.scalars(select(SlotAssignment)))
    assert [(a.contact_id, a.journey_id) for a in assignments] == [(contact_id, kept.id)]
    chosen = (await snippet("decide", slots=["offer"], page=PLAIN)).json()["slots"]
    assert chosen["offer"]["source"] == "assignment"


async def test_identify_creates_an_unknown_contact(
    snippet: Post, shop: Shop, sessions: async_sessionmaker[AsyncSession]
) -> None:
    response = await snippet("identify", email="new@example.com", first_name="Nia", page=PLAIN)
    assert response.json() == {"identified": True, "verified": False}
    async with sessions() as db:
        contact = await db.scalar(select(Contact))
        visitor = await db.get(Visitor, VISITOR)
    assert contact is not None and (contact.email, contact.first_name) == (
        "new@example.com",
        "Nia",
    )
    assert visitor is not None and visitor.claimed_contact_id == contact.id
    assert visitor.contact_id is None and visitor.site_key_id == shop.site_id
    bad = await snippet("identify", email="not-an-address", page=PLAIN)
    assert bad.status_code == 400
    assert "not a valid email address" in bad.json()["error"]["message"]


async def test_stitching_again_changes_nothing(
    shop: Shop, sessions: async_sessionmaker[AsyncSession], clock: MovableClock
) -> None:
    contact_id = await _contact(sessions, email="ada@example.com")
    async with sessions() as db, db.begin():
        db.add(Visitor(id=VISITOR, site_key_id=shop.site_id, traits={"utm_source": "x"}))
        await db.flush()
        db.add(Event(type="page.viewed", visitor_id=VISITOR, properties={}))
    async with sessions() as db, db.begin():
        first = await stitch(db, visitor_id=VISITOR, contact_id=contact_id, now=clock.now())
    async with sessions() as db, db.begin():
        again = await stitch(db, visitor_id=VISITOR, contact_id=contact_id, now=clock.now())
    assert (first.events, first.relinked) == (1, False)
    assert (again.events, again.journeys, again.merged, again.relinked) == (0, 0, 0, False)
    other = await _contact(sessions, email="bob@example.com")
    async with sessions() as db, db.begin():
        relinked = await stitch(db, visitor_id=VISITOR, contact_id=other, now=clock.now())
    async with sessions() as db:
        event = await db.scalar(select(Event))
    assert relinked.relinked is True
    assert event is not None and event.contact_id == contact_id  # Ada's history stays Ada's


async def test_form_submission_claims_the_visitor_and_a_click_verifies_it(
    client: AsyncTestClient[Litestar],
    snippet: Post,
    shop: Shop,
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
) -> None:
    await make_form(sessions)
    await snippet("events", type="page.viewed", page=LANDING)
    response = await client.post(
        "/f/signup",
        data=answers(clock, email="lisa@example.com", name="Lisa", visitor_id=VISITOR),
        headers={"Origin": ORIGIN},
    )
    assert response.status_code == 200, response.text
    async with sessions() as db:
        contact = await db.scalar(select(Contact))
        visitor = await db.get(Visitor, VISITOR)
        events = list(await db.scalars(select(Event).order_by(Event.id)))
    assert contact is not None and visitor is not None
    assert (visitor.contact_id, visitor.claimed_contact_id) == (None, contact.id)
    assert [(e.type, e.contact_id) for e in events] == [
        ("page.viewed", None),
        ("form.submitted", contact.id),
    ]
    decided = (await snippet("decide", slots=["hero"], page=PLAIN)).json()
    assert decided == {"slots": {}, "known": False}

    # Lisa clicks a link we emailed her: the redirect carries a proof for the shop's page.
    message = await _email_to(sessions, contact.id, clock)
    token = sign_tracking(client, message, f"{ORIGIN}/offer?x=1#top")
    redirect = await client.get(f"/t/c/{token}", follow_redirects=False)
    target = urlsplit(redirect.headers["location"])
    assert (target.path, target.fragment) == ("/offer", "top")
    proof = parse_qs(target.query)[LINK_PARAMETER][0]
    response = await snippet("identify", verify=proof, page=PLAIN)
    assert response.json() == {"identified": True, "verified": True}
    async with sessions() as db:
        visitor = await db.get(Visitor, VISITOR)
        events = list(await db.scalars(select(Event).order_by(Event.id)))
    assert visitor is not None and visitor.contact_id == contact.id
    assert {e.contact_id for e in events} == {contact.id}
    decided = (await snippet("decide", slots=["hero"], page=PLAIN)).json()
    assert decided["slots"]["hero"]["variant"] == "known"


async def test_a_click_to_another_site_carries_no_proof(
    client: AsyncTestClient[Litestar],
    shop: Shop,
    sessions: async_sessionmaker[AsyncSession],
    clock: MovableClock,
) -> None:
    contact_id = await _contact(sessions, email="ada@example.com")
    message = await _email_to(sessions, contact_id, clock)
    token = sign_tracking(client, message, "https://elsewhere.example.org/page")
    redirect = await client.get(f"/t/c/{token}", follow_redirects=False)
    assert redirect.headers["location"] == "https://elsewhere.example.org/page"
