"""Tracking, unsubscribe, preferences and SMS callbacks, through the real app and database."""

from __future__ import annotations

import re
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, ContactConsent, Delivery, Event, OutboxMessage, Suppression
from runtime.engine import build_runtime
from runtime.messaging.channels import link_signer
from runtime.messaging.links import LinkSigner

Client = AsyncTestClient[Litestar]


def _signer(app: Litestar) -> LinkSigner:
    return link_signer(app.state.settings)


async def _contact(sessions: async_sessionmaker[AsyncSession], **fields: Any) -> int:
    values: dict[str, Any] = {"email": "ann@example.test", "phone": "+46701234567", "consent": {}}
    values.update(fields)
    async with sessions() as db, db.begin():
        contact_id = await db.scalar(insert(Contact).values(**values).returning(Contact.id))
        assert contact_id is not None
        return contact_id


async def _send(
    app: Litestar,
    sessions: async_sessionmaker[AsyncSession],
    contact_id: int,
    subject: str = "News",
    **payload: Any,
) -> int:
    # The app's own runtime lives on the test client's event loop; deliver from this one.
    rt = build_runtime(app.state.settings, sessions=sessions, clock=app.state.clock)
    async with sessions() as db, db.begin():
        message_id = await db.scalar(
            insert(OutboxMessage)
            .values(
                idempotency_key=f"k-{subject}",
                channel="email",
                category=payload.pop("category", "marketing"),
                contact_id=contact_id,
                node_id="mail_1",
                payload={
                    "to": "ann@example.test",
                    "subject": subject,
                    "text": "Hello",
                    "html": '<p><a href="https://shop.test/guide">Guide</a></p>',
                    **payload,
                },
                next_attempt_at=rt.clock.now(),
                created_at=rt.clock.now(),
            )
            .returning(OutboxMessage.id)
        )
        assert message_id is not None
    await rt.drain()
    return message_id


async def _events(sessions: async_sessionmaker[AsyncSession], kind: str) -> list[Event]:
    async with sessions() as db:
        return list((await db.scalars(select(Event).where(Event.type == kind))).all())


async def test_open_and_click_links_in_the_caught_mail_record_events_once(
    app: Litestar, client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    contact = await _contact(sessions)
    message_id = await _send(app, sessions, contact)
    async with sessions() as db:
        caught = await db.get(Delivery, message_id)
    assert caught is not None and caught.detail is not None  # the dev mail catcher kept it
    raw = caught.detail.replace("=\n", "").replace("=3D", "=")
    pixel = re.search(r"http://testserver\.local(/t/o/[^\"]+\.gif)", raw)
    click = re.search(r"http://testserver\.local(/t/c/[^\"]+)\"", raw)
    assert pixel is not None and click is not None
    for _ in range(2):
        response = await client.get(pixel.group(1))
        assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
    [opened] = await _events(sessions, "email.opened")
    assert opened.contact_id == contact
    assert opened.properties["message_id"] == message_id
    assert opened.properties["node_id"] == "mail_1"
    response = await client.get(click.group(1), follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == "https://shop.test/guide"
    [clicked] = await _events(sessions, "email.clicked")
    assert clicked.properties["url"] == "https://shop.test/guide"


async def test_forged_tracking_links_are_refused(app: Litestar, client: Client) -> None:
    signer = _signer(app)
    token = signer.dumps("click", {"m": 1, "u": "https://evil.test"})
    forged = token.split(".")[0] + ".AAAAAAAAAAAAAAAAAAAAAA"
    assert (await client.get(f"/t/c/{forged}", follow_redirects=False)).status_code == 404
    assert (await client.get(f"/t/o/{forged}.gif")).status_code == 404
    # A valid click token is no unsubscribe token.
    assert (await client.post(f"/u/{token}")).status_code == 404


async def test_one_click_unsubscribe_suppresses_later_marketing(
    app: Litestar, client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    contact = await _contact(sessions)
    first = await _send(app, sessions, contact, "First")
    url = (
        _signer(app)
        .unsubscribe_url(first, contact, "email")
        .removeprefix("http://testserver.local")
    )
    page = await client.get(url)
    assert page.status_code == 200 and "Unsubscribe" in page.text
    async with sessions() as db:
        assert (await db.get(Contact, contact)).consent == {}  # type: ignore[union-attr]
    # What a mail client does for RFC 8058: a POST with this body, no cookies, no CSRF token.
    response = await client.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    async with sessions() as db:
        row = await db.get(Contact, contact)
        assert row is not None and row.consent["email"]["granted"] is False
        assert (await db.scalar(select(Suppression.reason))) == "unsubscribed"
        history = (await db.scalars(select(ContactConsent))).all()
        assert [(h.channel, h.granted) for h in history] == [("email", False)]
    later = await _send(app, sessions, contact, "Second")
    receipt = await _send(app, sessions, contact, "Receipt", category="transactional")
    async with sessions() as db:
        assert (await db.get(OutboxMessage, later)).status == "suppressed"  # type: ignore[union-attr]
        assert (await db.get(OutboxMessage, receipt)).status == "sent"  # type: ignore[union-attr]
    assert len(await _events(sessions, "email.unsubscribed")) == 1


async def test_the_preference_page_changes_channels_both_ways(
    app: Litestar, client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    contact = await _contact(sessions)
    url = _signer(app).preferences_url(contact).removeprefix("http://testserver.local")
    page = await client.get(url)
    assert page.status_code == 200 and 'name="sms"' in page.text
    await client.post(url, data={"email": "1"})
    async with sessions() as db:
        row = await db.get(Contact, contact)
        assert row is not None
        assert row.consent["sms"]["granted"] is False and "email" not in row.consent
        assert (await db.scalar(select(Suppression.address))) == "+46701234567"
    await client.post(url, data={"email": "1", "sms": "1"})
    async with sessions() as db:
        row = await db.get(Contact, contact)
        assert row is not None and row.consent["sms"]["granted"] is True
        assert (await db.scalar(select(Suppression.address))) is None
    bad = await client.get("/preferences/not-a-token")
    assert bad.status_code == 404


async def test_inbound_stop_unsubscribes_sms_and_reports_become_events(
    app: Litestar, client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    app.state.settings.sms_provider = "46elks"
    contact = await _contact(sessions)
    signer = _signer(app)
    inbound = f"/hooks/sms/inbound/{signer.sms_inbound_token()}"
    response = await client.post(
        inbound, data={"from": "0701234567", "to": "+4676", "message": "Stop"}
    )
    assert response.status_code == 201
    async with sessions() as db:
        row = await db.get(Contact, contact)
        assert row is not None and row.consent["sms"]["granted"] is False
        assert (await db.scalar(select(Suppression.reason))) == "stop"
    [received] = await _events(sessions, "sms.received")
    assert received.properties["stop"] is True
    assert (await client.post("/hooks/sms/inbound/forged", data={})).status_code == 404

    message_id = await _send(app, sessions, contact, "ignored", category="transactional")
    status = signer.sms_status_url(message_id).removeprefix("http://testserver.local")
    await client.post(status, data={"id": "abc", "status": "delivered"})
    [delivered] = await _events(sessions, "sms.delivered")
    assert delivered.properties["message_id"] == message_id
