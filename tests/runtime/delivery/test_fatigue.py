"""Fatigue: frequency caps and sending windows defer (or drop) marketing, never lose it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from backend.models import OutboxStatus
from backend.settings import Settings
from runtime.clock import FakeClock
from runtime.delivery.email import EmailDeliverer
from runtime.delivery.sms import GenericProvider, SmsDeliverer
from runtime.delivery.webhook import WebhookDeliverer
from runtime.engine import Runtime
from runtime.messaging.fatigue import Cap, SendingWindow, cap_release, parse_caps, zone
from tests.runtime.conftest import Mailbox
from tests.runtime.delivery.conftest import add_contact, gated_runtime, outbox_row, queue
from tests.runtime.delivery.http_server import Script, http_server

STOCKHOLM = zone("Europe/Stockholm", "UTC")


def test_caps_parse_and_release_when_the_oldest_message_ages_out() -> None:
    [cap] = parse_caps({"email": "3/7d"})
    assert cap == Cap("email", 3, timedelta(days=7))
    now = datetime(2030, 1, 10, tzinfo=UTC)
    sent = [now - timedelta(days=6), now - timedelta(days=2), now - timedelta(hours=1)]
    assert cap_release(cap, sent[1:], now) is None
    assert cap_release(cap, sent, now) == sent[0] + timedelta(days=7)
    assert cap_release(cap, [now - timedelta(days=8), *sent[1:]], now) is None


def test_quiet_hours_cross_midnight_in_the_contacts_time_zone() -> None:
    window = SendingWindow.parse("21:00-08:00", range(7))
    # 20:30 UTC is 21:30 in Stockholm (winter): quiet until 08:00 local = 07:00 UTC.
    late = datetime(2030, 1, 7, 20, 30, tzinfo=UTC)
    assert not window.allows(late, STOCKHOLM)
    assert window.next_open(late, STOCKHOLM) == datetime(2030, 1, 8, 7, 0, tzinfo=UTC)
    assert window.allows(late, zone("America/New_York", "UTC"))  # 15:30 there


def test_sending_days_skip_to_the_next_allowed_morning() -> None:
    weekdays = SendingWindow.parse("21:00-08:00", range(5))
    saturday = datetime(2030, 1, 12, 12, 0, tzinfo=UTC)
    assert weekdays.next_open(saturday, STOCKHOLM) == datetime(2030, 1, 14, 7, 0, tzinfo=UTC)


@pytest.fixture
def capped(sessions: Any, settings: Settings, clock: FakeClock, email: EmailDeliverer) -> Runtime:
    tuned = settings.model_copy(
        update={"frequency_caps": {"email": "3/7d"}, "quiet_hours": "21:00-08:00"}
    )
    return gated_runtime(sessions, tuned, clock, {"email": email})


async def test_a_fourth_marketing_email_in_a_week_waits_for_the_cap(
    capped: Runtime, mailbox: Mailbox, clock: FakeClock
) -> None:
    contact = await add_contact(capped, timezone="Europe/Stockholm")
    ids = []
    for n in range(4):
        ids.append(await queue(capped, contact, {"to": "a@example.test", "subject": f"M{n}"}))
        await capped.drain()
        clock.advance(hours=1)
    assert mailbox.subjects() == ["M0", "M1", "M2"]
    held = await outbox_row(capped, ids[3])
    assert held.status == OutboxStatus.deferred.value
    assert "frequency cap" in (held.status_reason or "")
    assert held.attempts == 0  # a deferral is not a failed attempt
    # The first email was sent at 09:00 on Monday the 7th: one slot frees a week later,
    # which is inside the Stockholm window (10:00 local).
    assert held.next_attempt_at == datetime(2030, 1, 14, 9, 0, tzinfo=UTC)
    # A receipt is not held back by the cap.
    receipt = await queue(
        capped, contact, {"to": "a@example.test", "subject": "Receipt"}, category="transactional"
    )
    await capped.drain()
    assert (await outbox_row(capped, receipt)).status == OutboxStatus.sent.value
    clock.set(held.next_attempt_at)
    await capped.drain()
    assert mailbox.subjects() == ["M0", "M1", "M2", "Receipt", "M3"]
    assert (await outbox_row(capped, ids[3])).status == OutboxStatus.sent.value


async def test_quiet_hours_defer_marketing_to_the_contacts_morning(
    capped: Runtime, mailbox: Mailbox, clock: FakeClock
) -> None:
    clock.set(datetime(2030, 1, 7, 22, 0, tzinfo=UTC))  # 23:00 in Stockholm
    contact = await add_contact(capped, timezone="Europe/Stockholm")
    message_id = await queue(capped, contact, {"to": "a@example.test", "subject": "Late"})
    report = await capped.drain()
    assert (report.withheld, report.retried, report.dead) == (1, 0, 0), "held, not failed"
    row = await outbox_row(capped, message_id)
    assert row.status == OutboxStatus.deferred.value
    assert "sending window" in (row.status_reason or "")
    assert row.next_attempt_at == datetime(2030, 1, 8, 7, 0, tzinfo=UTC)
    assert mailbox.messages == []
    clock.set(row.next_attempt_at)
    await capped.drain()
    assert mailbox.subjects() == ["Late"]


async def test_the_marketer_can_choose_to_drop_instead_of_defer(
    capped: Runtime, mailbox: Mailbox, clock: FakeClock
) -> None:
    clock.set(datetime(2030, 1, 7, 22, 0, tzinfo=UTC))
    contact = await add_contact(capped, timezone="Europe/Stockholm")
    message_id = await queue(
        capped, contact, {"to": "a@example.test", "subject": "Now or never", "when_blocked": "drop"}
    )
    await capped.drain()
    row = await outbox_row(capped, message_id)
    assert row.status == OutboxStatus.suppressed.value
    assert (row.status_reason or "").startswith("dropped: outside the sending window")
    assert mailbox.messages == []


async def test_withdrawn_consent_stops_marketing_but_not_receipts(
    capped: Runtime, mailbox: Mailbox
) -> None:
    contact = await add_contact(capped, consent={"email": {"granted": False}})
    news = await queue(capped, contact, {"to": "a@example.test", "subject": "News"})
    receipt = await queue(
        capped, contact, {"to": "a@example.test", "subject": "Receipt"}, category="transactional"
    )
    await capped.drain()
    row = await outbox_row(capped, news)
    assert row.status == OutboxStatus.suppressed.value
    assert "unsubscribed" in (row.status_reason or "")
    assert (await outbox_row(capped, receipt)).status == OutboxStatus.sent.value
    assert mailbox.subjects() == ["Receipt"]


async def test_the_all_channels_cap_counts_email_and_sms_but_not_webhooks(
    sessions: Any, settings: Settings, clock: FakeClock, email: EmailDeliverer, mailbox: Mailbox
) -> None:
    tuned = settings.model_copy(update={"frequency_caps": {"all": "2/7d"}, "quiet_hours": ""})
    script = Script()
    async with httpx.AsyncClient(timeout=5) as client:
        with http_server(script) as base:
            sms = SmsDeliverer(GenericProvider(base + "/sms"), sender="Shop", client=client)
            hooks = WebhookDeliverer(client, clock)
            rt = gated_runtime(
                sessions, tuned, clock, {"email": email, "sms": sms, "webhook": hooks}
            )
            contact = await add_contact(rt, phone="+46701234567")
            hook = await queue(rt, contact, {"url": base + "/hook", "body": {}}, channel="webhook")
            first = await queue(rt, contact, {"to": "a@example.test", "subject": "E1"})
            text = await queue(rt, contact, {"to": "+46701234567", "text": "S1"}, channel="sms")
            await rt.drain()
            clock.advance(minutes=1)
            third = await queue(rt, contact, {"to": "a@example.test", "subject": "E2"})
            await rt.drain()
    for sent in (hook, first, text):
        assert (await outbox_row(rt, sent)).status == OutboxStatus.sent.value
    held = await outbox_row(rt, third)
    assert held.status == OutboxStatus.deferred.value
    assert "at most 2 marketing messages per 7 days" in (held.status_reason or "")
    assert mailbox.subjects() == ["E1"]
