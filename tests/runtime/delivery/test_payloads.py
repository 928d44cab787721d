"""Typed channel payloads (``nodes.sdk``): what a node builds is what a deliverer reads, and a
malformed payload fails once, permanently, saying which field is wrong."""

from __future__ import annotations

from nodes.sdk import EmailPayload, SmsPayload, TaskPayload, WebhookPayload
from runtime.engine import Runtime
from tests.runtime.conftest import Mailbox
from tests.runtime.delivery.conftest import outbox_row, queue


def test_payloads_dump_as_the_wire_spells_them_and_keep_delivery_options() -> None:
    sms = SmsPayload(to="+46701234567", text="Hej", sender="Butiken")
    assert sms.dump() == {"to": "+46701234567", "text": "Hej", "from": "Butiken"}
    email = EmailPayload.read(
        {"to": "a@b.se", "from": "Shop <hi@shop.test>", "when_blocked": "drop"}
    )
    assert email.sender == "Shop <hi@shop.test>" and email.dump()["when_blocked"] == "drop"
    assert WebhookPayload(url="https://x.test").dump() == {"url": "https://x.test", "body": {}}
    assert TaskPayload.read({"title": "Ring", "owner_id": "7"}).owner_id == 7


async def test_a_malformed_payload_is_dead_after_one_attempt_with_the_field_named(
    gated: Runtime, mailbox: Mailbox
) -> None:
    message_id = await queue(
        gated,
        None,
        {"to": "a@example.com", "subject": "Hej", "headers": ["not", "a", "mapping"]},
        category="transactional",
    )
    await gated.drain()
    row = await outbox_row(gated, message_id)
    assert (row.status, row.attempts) == ("dead", 1)
    assert "the email message is malformed (headers:" in (row.status_reason or "")
    assert mailbox.messages == []


async def test_a_payload_built_from_the_model_is_delivered(
    gated: Runtime, mailbox: Mailbox
) -> None:
    payload = EmailPayload(to="Åsa <asa@example.com>", subject="Välkommen", text="Hej Åsa")
    message_id = await queue(gated, None, payload.dump(), category="transactional")
    await gated.drain()
    assert (await outbox_row(gated, message_id)).status == "sent"
    assert mailbox.subjects() == ["=?utf-8?q?V=C3=A4lkommen?="]
