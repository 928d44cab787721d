"""Outbox and Tasks pages: status and reason, the caught email, admin retry, completing a task."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import (
    Contact,
    Delivery,
    Event,
    OutboxMessage,
    Role,
    Suppression,
    Task,
    User,
)
from runtime.engine import build_runtime
from tests.backend.messaging.test_public_links import _contact, _send
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import add_user, csrf_from, post_form


async def test_outbox_lists_messages_with_reasons_and_shows_the_caught_email(
    app: Litestar, signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    contact = await _contact(sessions, consent={"email": {"granted": False}})
    suppressed = await _send(app, sessions, contact, "Offer")
    sent = await _send(app, sessions, contact, "Your receipt", category="transactional")
    client = await signed_in(Role.marketer)
    page = await client.get("/outbox")
    assert page.status_code == 200
    assert "Offer" in page.text and "Your receipt" in page.text
    assert "no consent: the contact unsubscribed from email" in page.text
    only = await client.get("/outbox?status=suppressed", headers={"HX-Request": "true"})
    assert "Offer" in only.text and "Your receipt" not in only.text
    detail = await client.get(f"/outbox/{sent}")
    assert detail.status_code == 200
    assert "Message-ID: &lt;tf." in detail.text  # the caught email, as it would have been sent
    assert (await client.get(f"/outbox/{suppressed}")).status_code == 200
    assert (await client.get("/outbox/999999")).status_code == 404


async def test_only_an_admin_can_retry_a_dead_message(
    app: Litestar, signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as db, db.begin():
        dead = await db.scalar(
            insert(OutboxMessage)
            .values(
                idempotency_key="dead-1",
                channel="email",
                payload={"to": "x@example.test"},
                status="dead",
                status_reason="the mail server refused the message",
                attempts=8,
            )
            .returning(OutboxMessage.id)
        )
    client = await signed_in(Role.marketer)
    refused = await post_form(client, f"/outbox/{dead}/retry", {}, form_page="/outbox")
    assert refused.status_code == 403
    client = await signed_in(Role.admin)
    page = await client.get(f"/outbox/{dead}")
    assert "Send again" in page.text
    response = await post_form(client, f"/outbox/{dead}/retry", {}, form_page="/outbox")
    assert response.status_code == 303
    async with sessions() as db:
        row = await db.get(OutboxMessage, dead)
        assert row is not None and (row.status, row.attempts) == ("pending", 0)
    again = await post_form(client, f"/outbox/{dead}/retry", {}, form_page="/outbox")
    assert again.status_code == 400


async def test_completing_a_task_emits_an_event(
    signed_in: SignedIn,
    client: AsyncTestClient[Litestar],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await signed_in(Role.viewer)
    contact = await _contact(sessions, first_name="Ann")
    admin = (await add_user(sessions, "admin@example.com", Role.admin)).id
    async with sessions() as db, db.begin():
        me = await db.scalar(select(User.id).where(User.email == "viewer@example.com"))
        task_id = await db.scalar(
            insert(Task)
            .values(
                contact_id=contact,
                owner_id=me,
                title="Call Ann",
                note="Downloaded the guide",
                node_id="notify_1",
            )
            .returning(Task.id)
        )
        await db.execute(insert(Task).values(title="Someone else's", owner_id=admin))
        unassigned = await db.scalar(
            insert(Task).values(title="Nobody's yet", owner_id=None).returning(Task.id)
        )
    page = await client.get("/tasks")
    assert "Call Ann" in page.text and "Downloaded the guide" in page.text
    assert f'href="/contacts/{contact}"' in page.text
    assert "Someone else" not in page.text
    # Unassigned tasks are on everyone's default list, ready to be taken.
    assert "Nobody&#39;s yet" in page.text and f'action="/tasks/{unassigned}/take"' in page.text
    assert "Call Ann" not in (await client.get("/tasks?show=unassigned")).text
    assert "Someone else" in (await client.get("/tasks?show=open")).text
    taken = await post_form(client, f"/tasks/{unassigned}/take", {}, form_page="/tasks")
    assert taken.status_code == 303
    async with sessions() as db:
        assert (await db.get(Task, unassigned)).owner_id == me  # type: ignore[union-attr]
    response = await post_form(client, f"/tasks/{task_id}/done", {}, form_page="/tasks")
    assert response.status_code == 303
    async with sessions() as db:
        task = await db.get(Task, task_id)
        assert task is not None and task.status == "done" and task.completed_at is not None
        [event] = (await db.scalars(select(Event).where(Event.type == "task.completed"))).all()
        assert event.contact_id == contact and event.properties["node_id"] == "notify_1"
        assert (await db.get(Contact, contact)) is not None
    assert "Call Ann" not in (await client.get("/tasks")).text


async def test_bounce_notifications_feed_the_suppression_list(
    app: Litestar, signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    contact = await _contact(sessions)
    client = await signed_in(Role.admin)
    page = await client.get("/outbox/suppressions")
    hook = re.search(r"http://testserver\.local(/hooks/email/bounce/[^<]+)</code>", page.text)
    assert hook is not None
    bad = await client.post(hook.group(1), json={"type": "hard"})
    assert bad.status_code == 400 and "email" in bad.text
    forged = await client.post("/hooks/email/bounce/x.y", json={"email": "a@b.c"})
    assert forged.status_code == 404
    soft = await client.post(hook.group(1), json={"email": "ann@example.test", "type": "soft"})
    assert soft.status_code == 204
    hard = await client.post(hook.group(1), json={"email": "Ann@Example.test", "type": "hard"})
    assert hard.status_code == 204
    async with sessions() as db:
        [entry] = (await db.scalars(select(Suppression))).all()
        assert (entry.address, entry.reason, entry.contact_id) == (
            "ann@example.test",
            "hard_bounce",
            contact,
        )
        bounced = (await db.scalars(select(Event).where(Event.type == "email.bounced"))).all()
        assert sorted(e.properties["type"] for e in bounced) == ["hard", "soft"]
    listed = await client.get("/outbox/suppressions")
    assert "ann@example.test" in listed.text and "hard_bounce" in listed.text
    removed = await post_form(
        client, f"/outbox/suppressions/{entry.id}/remove", {}, form_page="/outbox"
    )
    assert removed.status_code == 303
    async with sessions() as db:
        assert (await db.scalar(select(Suppression))) is None


async def test_the_editor_can_count_sms_parts(signed_in: SignedIn) -> None:
    client = await signed_in(Role.marketer)
    response = await client.get("/messaging/sms-length", params={"text": "Hej 🙂"})
    assert response.json() == {
        "encoding": "UCS-2",
        "characters": 6,
        "segments": 1,
        "per_segment": 70,
    }


async def test_a_test_send_goes_through_the_outbox_to_the_mail_catcher(
    app: Litestar, signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = await signed_in(Role.marketer)
    token = csrf_from((await client.get("/outbox")).text)
    headers = {"X-CSRF-Token": token}
    bad = await client.post("/messaging/test-send", json={"to": "nope"}, headers=headers)
    assert bad.status_code == 400 and "not a valid email address" in bad.text
    empty = await client.post(
        "/messaging/test-send", json={"to": "me@shop.example", "subject": ""}, headers=headers
    )
    assert empty.status_code == 400
    response = await client.post(
        "/messaging/test-send",
        json={"to": "Me@Shop.example", "subject": "Welcome", "text": "Hi", "html": "<p>Hi</p>"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    message_id = response.json()["message_id"]
    rt = build_runtime(app.state.settings, sessions=sessions, clock=app.state.clock)
    await rt.drain()
    async with sessions() as db:
        message = await db.get(OutboxMessage, message_id)
        caught = await db.get(Delivery, message_id)
    assert message is not None and message.status == "sent"
    assert message.payload["to"] == "me@shop.example" and message.category == "transactional"
    assert caught is not None and "Subject: [Test] Welcome" in (caught.detail or "")
    assert "/t/o/" not in (caught.detail or "")  # test sends are not tracked


async def test_a_deferral_time_is_formatted_in_the_readers_zone(
    signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    when = datetime(2026, 12, 4, 15, 0, 47, 301062, tzinfo=UTC)
    async with sessions() as db, db.begin():
        db.add(
            OutboxMessage(
                idempotency_key="deferred-1",
                channel="email",
                payload={"subject": "Weekly news"},
                status="deferred",
                status_reason=f"deferred until {when.isoformat()}: quiet hours",
                next_attempt_at=when,
            )
        )
    client = await signed_in(Role.marketer)
    page = (await client.get("/outbox")).text
    assert "2026-12-04T15:00:47" not in page
    # The workspace's zone (Europe/Stockholm) and the reader's language.
    assert "Deferred until Dec 4, 2026 16:00 CET: quiet hours" in page
    detail = (await client.get("/outbox/1")).text
    assert "Deferred until Dec 4, 2026 16:00 CET: quiet hours" in detail
