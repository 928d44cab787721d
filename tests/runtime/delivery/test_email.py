"""Email through a real SMTP server (aiosmtpd on loopback): pooled, idempotent, failures sorted."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message as MimeMessage
from typing import Any

import pytest
from sqlalchemy import select

from backend.i18n import in_locale
from backend.models import DeliveryState, OutboxStatus, Suppression
from backend.settings import Settings
from runtime.claims import claim_outbox
from runtime.clock import FakeClock
from runtime.delivery import Outgoing
from runtime.delivery.email import EmailDeliverer
from runtime.engine import Runtime
from runtime.messaging.links import LinkSigner
from tests.runtime.conftest import Mailbox
from tests.runtime.delivery.conftest import add_contact, gated_runtime, ledger, outbox_row, queue
from tests.support.net import free_port
from tests.support.smtp import LoopbackSMTP, smtp_server

HTML = '<html><body><p>Hi!</p><a href="https://shop.test/guide?a=1&amp;b=2">Guide</a></body></html>'


def _part(mail: MimeMessage, kind: str = "text/html") -> str:
    for part in mail.walk():
        if part.get_content_type() == kind:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError(f"no {kind} part")


async def test_each_message_is_sent_once_over_one_reused_connection(
    gated: Runtime, mailbox: Mailbox, email: EmailDeliverer
) -> None:
    contact = await add_contact(gated)
    ids = [
        await queue(
            gated,
            contact,
            {"to": f"p{n}@example.test", "subject": f"S{n}", "text": "t"},
            category="transactional",
        )
        for n in range(6)
    ]
    report = await gated.drain()
    assert report.sent == 6
    assert sorted(mailbox.subjects()) == [f"S{n}" for n in range(6)]
    assert email.pool is not None
    # Concurrent sends may open up to the pool size, never one per message.
    assert 1 <= email.pool.connections_opened <= 4
    for message_id in ids:
        row = await outbox_row(gated, message_id)
        assert row.status == OutboxStatus.sent.value
        entry = await ledger(gated, message_id)
        assert entry is not None and entry.state == DeliveryState.accepted.value
    # Sequential sends after that reuse an idle connection.
    opened = email.pool.connections_opened
    await queue(
        gated,
        contact,
        {"to": "late@example.test", "subject": "late", "text": "t"},
        category="transactional",
    )
    await gated.drain()
    assert email.pool.connections_opened == opened
    assert len(mailbox.messages) == 7


async def test_marketing_mail_has_signed_tracking_and_one_click_unsubscribe(
    gated: Runtime, mailbox: Mailbox, signer: LinkSigner
) -> None:
    contact = await add_contact(gated)
    message_id = await queue(
        gated, contact, {"to": "a@example.test", "subject": "News", "text": "Hello", "html": HTML}
    )
    await gated.drain()
    [mail] = mailbox.messages
    unsubscribe = str(mail["List-Unsubscribe"]).strip("<>")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert signer.loads("unsubscribe", unsubscribe.rsplit("/", 1)[1]) == {
        "m": message_id,
        "c": contact,
        "ch": "email",
    }
    body = _part(mail)
    assert "https://shop.test/guide" not in body.replace(unsubscribe, "")
    click = re.search(r'href="(http://touchflow\.test/t/c/[^"]+)"', body)
    assert click is not None
    assert signer.loads("click", click.group(1).rsplit("/", 1)[1]) == {
        "m": message_id,
        "u": "https://shop.test/guide?a=1&b=2",
    }
    pixel = re.search(r'src="http://touchflow\.test/t/o/([^"]+)\.gif"', body)
    assert pixel is not None and signer.loads("open", pixel.group(1)) == {"m": message_id}
    assert unsubscribe in body
    assert unsubscribe in _part(mail, "text/plain")


async def test_the_footer_speaks_the_contacts_language(
    gated: Runtime, mailbox: Mailbox, signer: LinkSigner
) -> None:
    assert in_locale("Unsubscribe", "sv") == "Avregistrera"  # the app's hook is installed
    swede = await add_contact(gated, locale="sv-SE")
    english = await add_contact(gated)
    for contact, to in ((swede, "åsa@example.test"), (english, "ann@example.test")):
        await queue(gated, contact, {"to": to, "subject": to, "text": "Hej", "html": HTML})
    await gated.drain()
    mails = {str(make_header(decode_header(str(m["Subject"])))): m for m in mailbox.messages}
    expected = {
        "åsa@example.test": (swede, "Avregistrera", "E-postinställningar"),
        "ann@example.test": (english, "Unsubscribe", "Email preferences"),
    }
    for subject, (contact, unsubscribe, preferences) in expected.items():
        mail = mails[subject]
        link = str(mail["List-Unsubscribe"]).strip("<>")
        centre = signer.preferences_url(contact)
        text = _part(mail, "text/plain").replace("\r\n", "\n")
        assert f"\n--\n{unsubscribe}: {link}\n{preferences}: {centre}\n" in text
        html = _part(mail)
        assert f">{unsubscribe}</a>" in html and f">{preferences}</a>" in html
        assert f'href="{centre}"' in html


async def test_transactional_mail_has_no_unsubscribe_headers(
    gated: Runtime, mailbox: Mailbox
) -> None:
    contact = await add_contact(gated)
    await queue(
        gated,
        contact,
        {"to": "a@example.test", "subject": "Receipt", "text": "x"},
        category="transactional",
    )
    await gated.drain()
    [mail] = mailbox.messages
    assert mail["List-Unsubscribe"] is None


def test_forged_or_repurposed_tokens_are_refused(signer: LinkSigner) -> None:
    token = signer.dumps("open", {"m": 1})
    assert signer.loads("open", token) == {"m": 1}
    body, mac = token.split(".")
    other = signer.dumps("open", {"m": 2}).split(".")[0]
    for bad in (f"{other}.{mac}", f"{body}.{mac[:-1]}x", body, ""):
        with pytest.raises(ValueError):
            signer.loads("open", bad)
    with pytest.raises(ValueError):
        signer.loads("click", token)  # right signature, wrong purpose
    with pytest.raises(ValueError):
        LinkSigner(secret="other", base_url="x").loads("open", token)


class FlakyMailbox(Mailbox):
    """Answers 451 (try later) to the first ``failures`` DATA commands, then accepts."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.seen = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.seen += 1
            if self.seen <= self.failures:
                return "451 4.3.0 try again later"
        return await super().handle_DATA(server, session, envelope)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
def flaky() -> Iterator[tuple[FlakyMailbox, int]]:
    with smtp_server(FlakyMailbox(failures=2)) as server:
        yield server


async def test_temporary_failures_retry_with_backoff_and_deliver_once(
    sessions: Any,
    settings: Settings,
    clock: FakeClock,
    flaky: tuple[FlakyMailbox, int],
    signer: LinkSigner,
) -> None:
    mailbox, port = flaky
    email = EmailDeliverer(hostname="127.0.0.1", port=port, sender="hi@shop.test", links=signer)
    rt = gated_runtime(sessions, settings, clock, {"email": email})
    contact = await add_contact(rt)
    message_id = await queue(
        rt,
        contact,
        {"to": "a@example.test", "subject": "Hi", "text": "x"},
        category="transactional",
    )
    first = await rt.drain()
    assert first.retried == 1 and mailbox.messages == []
    row = await outbox_row(rt, message_id)
    assert row.status == OutboxStatus.pending.value and "451" in (row.last_error or "")
    assert row.next_attempt_at == clock.now() + timedelta(seconds=30)
    clock.advance(seconds=30)
    await rt.drain()
    clock.advance(minutes=1)
    await rt.drain()
    clock.advance(hours=1)
    await rt.drain()
    assert len(mailbox.messages) == 1
    assert (await outbox_row(rt, message_id)).status == OutboxStatus.sent.value
    await email.aclose()


async def test_refused_recipient_is_dead_visible_and_suppressed(
    sessions: Any,
    settings: Settings,
    clock: FakeClock,
    flaky: tuple[FlakyMailbox, int],
    signer: LinkSigner,
) -> None:
    mailbox, port = flaky
    mailbox.failures = 0
    email = EmailDeliverer(hostname="127.0.0.1", port=port, sender="hi@shop.test", links=signer)
    rt = gated_runtime(sessions, settings, clock, {"email": email})
    contact = await add_contact(rt, email="nobody@example.test")
    bounced = await queue(
        rt,
        contact,
        {"to": "nobody@example.test", "subject": "1", "text": "x"},
        category="transactional",
    )
    await rt.drain()
    row = await outbox_row(rt, bounced)
    assert row.status == OutboxStatus.dead.value and "550" in (row.status_reason or "")
    async with rt.sessions() as session:
        entry = await session.scalar(select(Suppression))
        assert entry is not None
        assert (entry.address, entry.reason) == ("nobody@example.test", "hard_bounce")
    # The next send to the address is not attempted at all, even a transactional one.
    again = await queue(
        rt,
        contact,
        {"to": "Nobody@example.test", "subject": "2", "text": "x"},
        category="transactional",
    )
    await rt.drain()
    row = await outbox_row(rt, again)
    assert row.status == OutboxStatus.suppressed.value
    assert "hard_bounce" in (row.status_reason or "")
    await email.aclose()


async def test_a_crash_after_the_server_accepted_does_not_send_twice(
    gated: Runtime, mailbox: Mailbox, clock: FakeClock
) -> None:
    contact = await add_contact(gated)
    message_id = await queue(
        gated,
        contact,
        {"to": "a@example.test", "subject": "Once", "text": "x"},
        category="transactional",
    )
    # A worker claims the message and the server accepts it, then the worker dies
    # before the outbox records the result.
    async with gated.sessions() as session, session.begin():
        [claimed] = await claim_outbox(
            session, owner="doomed", now=clock.now(), limit=10, lease=gated.lease
        )
    await gated.deliverers["email"].deliver(
        Outgoing(
            id=claimed.id,
            idempotency_key=claimed.idempotency_key,
            channel="email",
            payload=claimed.payload,
            category=claimed.category,
            contact_id=contact,
        )
    )
    assert mailbox.subjects() == ["Once"]
    # The lease runs out; another worker retries and finds the ledger says "accepted".
    clock.advance(gated.lease + timedelta(seconds=1))
    await gated.drain()
    clock.advance(minutes=5)
    await gated.drain()
    assert mailbox.subjects() == ["Once"]
    row = await outbox_row(gated, message_id)
    assert row.status == OutboxStatus.sent.value
    assert row.provider_message_id == str(
        message_from_bytes(mailbox.messages[0].as_bytes())["Message-ID"]
    )


def test_message_id_is_stable_for_every_attempt(signer: LinkSigner) -> None:
    deliverer = EmailDeliverer(hostname="x", port=1, sender="hi@shop.test", links=signer)
    message = Outgoing(
        id=5,
        idempotency_key="j1:n1:1:0",
        channel="email",
        payload={"to": "a@example.test", "subject": "s", "text": "t"},
    )
    first, second = deliverer.build(message), deliverer.build(message)
    assert first["Message-ID"] == second["Message-ID"]
    assert first["Message-ID"].endswith("@shop.test>")


async def test_server_down_is_a_temporary_failure(
    sessions: Any, settings: Settings, clock: FakeClock, signer: LinkSigner
) -> None:
    email = EmailDeliverer(
        hostname="127.0.0.1", port=free_port(), sender="hi@shop.test", links=signer, timeout=2
    )
    rt = gated_runtime(sessions, settings, clock, {"email": email})
    message_id = await queue(
        rt,
        await add_contact(rt),
        {"to": "a@example.test", "subject": "s"},
        category="transactional",
    )
    report = await rt.drain()
    assert report.retried == 1
    row = await outbox_row(rt, message_id)
    assert row.status == OutboxStatus.pending.value and row.last_error


async def test_non_ascii_and_injected_headers_are_encoded_not_obeyed(
    gated: Runtime, mailbox: Mailbox
) -> None:
    contact = await add_contact(gated)
    await queue(
        gated,
        contact,
        {
            "to": "Åsa Öberg <asa@example.test>",
            "subject": "Hej Åsa\r\nBcc: victim@example.test",
            "text": "Räksmörgås",
            "html": "<p>Räksmörgås</p>",
        },
        category="transactional",
    )
    await gated.drain()
    [mail] = mailbox.messages
    assert mail["Bcc"] is None
    subject = str(make_header(decode_header(str(mail["Subject"]))))
    assert subject == "Hej Åsa Bcc: victim@example.test"
    assert "Åsa Öberg" in str(make_header(decode_header(str(mail["To"]))))
    assert "Räksmörgås" in _part(mail, "text/plain") and "Räksmörgås" in _part(mail)


async def test_the_pool_reconnects_after_the_server_dropped_its_connections(
    sessions: Any, settings: Settings, clock: FakeClock, signer: LinkSigner
) -> None:
    mailbox = Mailbox()
    server = LoopbackSMTP(mailbox)
    server.start()
    port = server.port
    # idle_check=0: every reuse is checked first, as a connection idle for a while would be.
    email = EmailDeliverer(
        hostname="127.0.0.1", port=port, sender="hi@shop.test", links=signer, idle_check=0
    )
    rt = gated_runtime(sessions, settings, clock, {"email": email})
    contact = await add_contact(rt)
    try:
        await queue(rt, contact, {"to": "a@example.test", "subject": "1"}, category="transactional")
        await rt.drain()
        server.stop()  # drops the pooled connection
        server = LoopbackSMTP(mailbox, port=port)
        server.start()
        second = await queue(
            rt, contact, {"to": "a@example.test", "subject": "2"}, category="transactional"
        )
        report = await rt.drain()
        assert report.sent == 1 and report.retried == 0
        assert (await outbox_row(rt, second)).status == OutboxStatus.sent.value
        assert mailbox.subjects() == ["1", "2"]
        assert email.pool is not None and email.pool.connections_opened == 2
    finally:
        await email.aclose()
        server.stop()
