"""The side panel's message tools: an email step's preview and test send, the SMS counter."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import Contact, Delivery, OutboxMessage, Role
from runtime.engine import build_runtime
from tests.backend.editor.conftest import Editor
from tests.backend.web.conftest import SignedIn
from tests.backend.web.support import csrf_token
from tests.runtime.nodes import graph

EMAIL = {
    "subject": "Hi {{ first_name | there }}",
    "body": "Your plan: {{ attributes.plan | Starter }}.",
    "button_text": "Open the guide",
    "button_url": "https://shop.example/guide",
}


async def _flow(editor: Editor, email: dict[str, Any] = EMAIL) -> None:
    nodes = [
        ("form", "action.email", email),
        ("text", "action.sms", {"text": "Hej {{ first_name }}"}),
    ]
    response = await editor.post("/import", {"graph": json.dumps(graph(nodes, []))})
    assert response.status_code == 200, response.text


def _srcdoc(page: str) -> str:
    match = re.search(r'<iframe class="preview-html"[^>]*sandbox=""[^>]*srcdoc="([^"]*)"', page)
    assert match, page
    return html.unescape(match.group(1))


async def _test_send(editor: Editor, data: dict[str, str]) -> str:
    token = await csrf_token(editor.client, editor.base)
    response = await editor.client.post(
        f"{editor.base}/nodes/form/test-send",
        data=data,
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )
    assert response.status_code in (200, 201), response.text
    return response.text


async def test_the_panel_of_a_message_step_loads_its_tools(editor: Editor) -> None:
    await _flow(editor)
    email_panel = (await editor.get("/nodes/form")).text
    assert f'hx-get="{editor.base}/nodes/form/preview"' in email_panel
    assert 'id="sms-length"' not in email_panel
    sms_panel = (await editor.get("/nodes/text")).text
    assert 'id="sms-length"' in sms_panel and 'hx-include="#cfg-text"' in sms_panel
    assert "/preview" not in sms_panel


async def test_the_preview_renders_a_contacts_first_name_and_the_fallbacks(
    editor: Editor,
) -> None:
    await _flow(editor)
    async with editor.sessions() as db, db.begin():
        db.add(Contact(email="anna@example.com", first_name="Anna", attributes={}))
        db.add(Contact(email="bo@example.com", first_name="Bo", attributes={"plan": "Pro"}))
    page = (await editor.get("/nodes/form/preview?contact=Anna@Example.com")).text
    assert '<dd class="preview-subject">Hi Anna</dd>' in page
    srcdoc = _srcdoc(page)
    assert "Your plan: Starter." in srcdoc
    assert 'href="https://shop.example/guide"' in srcdoc and "Open the guide" in srcdoc
    assert "Open the guide: https://shop.example/guide" in page  # the text part
    bo = (await editor.get("/nodes/form/preview?contact=bo@example.com")).text
    assert "Hi Bo" in bo and "Your plan: Pro." in _srcdoc(bo)
    # No contact picked: the sample contact.
    sample = (await editor.get("/nodes/form/preview")).text
    assert "Hi Alex" in sample and "Your plan: Starter." in _srcdoc(sample)
    missing = (await editor.get("/nodes/form/preview?contact=nobody@example.com")).text
    assert "There is no contact with this email." in missing
    choices = (await editor.get("/preview/contacts?contact=ann")).text
    assert '<option value="anna@example.com">Anna</option>' in choices
    assert "bo@example.com" not in choices


async def test_the_preview_says_when_the_node_would_not_send(editor: Editor) -> None:
    await _flow(editor, {"subject": "", "body": "x"})
    broken = (await editor.get("/nodes/form/preview")).text
    assert "Save a subject and a message" in broken
    await _flow(editor)
    async with editor.sessions() as db, db.begin():
        db.add(
            Contact(
                email="gone@example.com",
                first_name="Gone",
                consent={"email": {"granted": False}},
            )
        )
    gone = (await editor.get("/nodes/form/preview?contact=gone@example.com")).text
    assert "would not get this email (unsubscribed from email)" in gone
    assert "<iframe" not in gone


async def test_the_sms_counter_counts_gsm7_and_ucs2(editor: Editor) -> None:
    gsm = await editor.client.get(
        f"{editor.base}/sms-length", params={"cfg.text": "a" * 161}, headers={"HX-Request": "true"}
    )
    assert gsm.status_code == 200
    assert gsm.text.strip() == "161 characters · 2 SMS · GSM-7"
    emoji = await editor.client.get(
        f"{editor.base}/sms-length", params={"cfg.text": "Hej 🙂"}, headers={"HX-Request": "true"}
    )
    assert emoji.text.strip() == "6 characters · 1 SMS · UCS-2"
    empty = await editor.client.get(f"{editor.base}/sms-length")
    assert empty.text.strip() == "0 characters · 0 SMS · GSM-7"


async def test_the_sms_counter_fills_merge_fields_with_typical_and_longest_values(
    editor: Editor,
) -> None:
    async with editor.sessions() as db, db.begin():
        db.add_all(
            Contact(email=f"c{n}@example.se", first_name=name)
            for n, name in enumerate(["Åsa", "Bo", "Maximiliana-Charlotte", "Anna"])
        )
    text = "Hej {{ first_name }}! " + "a" * 140
    counted = await editor.client.get(
        f"{editor.base}/sms-length", params={"cfg.text": text}, headers={"HX-Request": "true"}
    )
    # Typed, the merge field is 16 characters; filled in it is 8 (typical) or 21 (longest).
    assert counted.text.strip() == (
        "Typical: 154 characters · 1 SMS · GSM-7. Longest: 167 characters · 2 SMS · GSM-7."
    )


async def test_a_test_send_is_caught_by_the_mail_catcher(
    editor: Editor, app: Litestar, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _flow(editor)
    async with editor.sessions() as db, db.begin():
        db.add(Contact(email="anna@example.com", first_name="Anna"))
    bad = await _test_send(editor, {"contact": "anna@example.com", "to": "nope"})
    assert "Not sent:" in bad and "not a valid email address" in bad
    page = await _test_send(editor, {"contact": "anna@example.com", "to": "Me@Shop.example"})
    assert "Test email queued for me@shop.example." in page
    async with sessions() as db:
        message = await db.scalar(select(OutboxMessage))
    assert message is not None and message.contact_id is None
    assert message.payload["subject"] == "[Test] Hi Anna"
    assert f'href="/outbox/{message.id}"' in page
    rt = build_runtime(app.state.settings, sessions=sessions, clock=app.state.clock)
    await rt.drain()
    async with sessions() as db:
        sent = await db.get(OutboxMessage, message.id)
        caught = await db.get(Delivery, message.id)
    assert sent is not None and sent.status == "sent"
    assert caught is not None
    assert "Subject: [Test] Hi Anna" in (caught.detail or "")
    assert "Your plan: Starter." in (caught.detail or "")


async def test_viewers_see_the_preview_but_cannot_send_a_test(
    editor: Editor, signed_in: SignedIn, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _flow(editor)
    await signed_in(Role.viewer)
    page = (await editor.get("/nodes/form/preview")).text
    assert "Hi Alex" in page and 'class="test-send"' not in page
    token = await csrf_token(editor.client, editor.base)
    refused = await editor.client.post(
        f"{editor.base}/nodes/form/test-send",
        data={"to": "me@shop.example"},
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )
    assert refused.status_code == 403
    async with sessions() as db:
        assert (await db.scalar(select(OutboxMessage))) is None


async def test_a_viewer_counts_the_saved_sms_text(editor: Editor, signed_in: SignedIn) -> None:
    await _flow(editor)
    await signed_in(Role.viewer)
    panel = (await editor.get("/nodes/text")).text
    # The viewer's field is disabled (left out of requests): the saved text rides in the address.
    match = re.search(r'id="sms-length"[^>]*hx-get="([^"]*)"', panel)
    assert match, panel
    counter = await editor.client.get(html.unescape(match.group(1)))
    # "Hej {{ first_name }}", counted as sent: with no contacts yet, a name of 8 or 30.
    assert counter.text.strip() == (
        "Typical: 12 characters · 1 SMS · GSM-7. Longest: 34 characters · 1 SMS · GSM-7."
    )
