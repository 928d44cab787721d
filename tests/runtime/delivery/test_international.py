"""Internationalised addresses (RFC 6531) through real SMTP servers, with and without SMTPUTF8,
and the one classification of delivery errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_string, policy
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.contacts.normalize import normalize_email
from backend.models import OutboxStatus, Suppression
from backend.settings import Settings
from runtime.clock import FakeClock
from runtime.delivery import HardBounce, PermanentError
from runtime.delivery.address import BadAddress, parse_address
from runtime.delivery.email import EmailDeliverer
from runtime.delivery.errors import NO_SMTPUTF8, is_permanent, smtp_failure
from runtime.engine import Runtime
from tests.runtime.delivery.conftest import add_contact, gated_runtime, outbox_row, queue
from tests.support.smtp import smtp_server


@dataclass
class Envelopes:
    """Each message as the server got it: envelope, MAIL options and the parsed message."""

    received: list[tuple[str, list[str], list[str], EmailMessage]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # An SMTPUTF8 message's headers are UTF-8 (RFC 6532); the bodies here are ASCII.
        mail = message_from_string(envelope.original_content.decode(), policy=policy.default)
        assert isinstance(mail, EmailMessage)
        with self.lock:
            self.received.append(
                (envelope.mail_from, list(envelope.rcpt_tos), list(envelope.mail_options), mail)
            )
        return "250 OK"


def _server(smtputf8: bool) -> Iterator[tuple[Envelopes, int]]:
    with smtp_server(Envelopes(), enable_SMTPUTF8=smtputf8, decode_data=False) as running:
        yield running


@pytest.fixture
def utf8_server() -> Iterator[tuple[Envelopes, int]]:
    yield from _server(smtputf8=True)


@pytest.fixture
def ascii_server() -> Iterator[tuple[Envelopes, int]]:
    yield from _server(smtputf8=False)


def _runtime(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: FakeClock, port: int
) -> Runtime:
    email = EmailDeliverer(hostname="127.0.0.1", port=port, sender="Shop <hi@shop.test>")
    return gated_runtime(sessions, settings, clock, {"email": email})


async def _send(rt: Runtime, to: str) -> int:
    contact = await add_contact(rt, email=normalize_email(to.rpartition("<")[2].rstrip(">")))
    message_id = await queue(
        rt,
        contact,
        {"to": to, "subject": "Hej Anna", "text": "Välkommen!"},
        category="transactional",
    )
    await rt.drain()
    return message_id


async def test_a_server_with_smtputf8_receives_a_swedish_address_as_written(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FakeClock,
    utf8_server: tuple[Envelopes, int],
) -> None:
    server, port = utf8_server
    rt = _runtime(sessions, settings, clock, port)
    message_id = await _send(rt, "Anna Sjöberg <anna.sjöberg@example.com>")
    [(mail_from, rcpt, options, mail)] = server.received
    assert rcpt == ["anna.sjöberg@example.com"]
    assert "SMTPUTF8" in [o.upper() for o in options] and mail_from == "hi@shop.test"
    assert mail["To"].addresses[0].addr_spec == "anna.sjöberg@example.com"
    assert mail["To"].addresses[0].display_name == "Anna Sjöberg"
    assert str(mail["Subject"]) == "Hej Anna"
    assert mail.get_body(("plain",)).get_content().strip() == "Välkommen!"  # type: ignore[union-attr]
    row = await outbox_row(rt, message_id)
    assert (row.status, row.attempts) == (OutboxStatus.sent.value, 1)


async def test_without_smtputf8_the_address_fails_at_once_with_a_reason(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FakeClock,
    ascii_server: tuple[Envelopes, int],
) -> None:
    server, port = ascii_server
    rt = _runtime(sessions, settings, clock, port)
    message_id = await _send(rt, "anna.sjöberg@example.com")
    assert server.received == []
    row = await outbox_row(rt, message_id)
    # Dead after the first attempt, not an hour of retries, and the Outbox page says why.
    assert (row.status, row.attempts) == (OutboxStatus.dead.value, 1)
    assert row.status_reason == NO_SMTPUTF8
    async with rt.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Suppression)) == 0


async def test_a_domain_with_swedish_letters_goes_out_in_idna_to_any_server(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FakeClock,
    ascii_server: tuple[Envelopes, int],
) -> None:
    server, port = ascii_server
    rt = _runtime(sessions, settings, clock, port)
    message_id = await _send(rt, "info@företag.se")
    [(_, rcpt, options, mail)] = server.received
    assert rcpt == ["info@xn--fretag-wxa.se"] and "SMTPUTF8" not in options
    assert str(mail["To"]) == "info@xn--fretag-wxa.se"
    assert (await outbox_row(rt, message_id)).status == OutboxStatus.sent.value


def test_addresses_are_parsed_once_for_envelope_and_headers() -> None:
    swedish = parse_address("Åsa Öberg <åsa@företag.se>")
    assert swedish.needs_smtputf8 and swedish.envelope == "åsa@xn--fretag-wxa.se"
    assert swedish.header().endswith("<åsa@företag.se>")
    assert swedish.header().startswith("=?utf-8?")  # the name RFC 2047-encoded
    plain = parse_address('"Shop, Inc." <hi@shop.test>')
    assert plain.header() == '"Shop, Inc." <hi@shop.test>' and not plain.needs_smtputf8
    for bad in ("", "anna", "anna@", "anna sjö@x.se", "a@exa mple.se", "a@-\u0300.se"):
        with pytest.raises(BadAddress):
            parse_address(bad)


def test_errors_are_classified_once_permanent_or_temporary() -> None:
    permanent = [
        PermanentError("x"),
        HardBounce("x", "a@b.se"),
        UnicodeEncodeError("ascii", "ö", 0, 1, "x"),
        aiosmtplib.SMTPResponseException(554, "rejected"),
        smtp_failure(aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported"), "a@b.se"),
        smtp_failure(aiosmtplib.SMTPResponseException(550, "no"), "a@b.se"),
    ]
    temporary = [
        aiosmtplib.SMTPResponseException(451, "try later"),
        TimeoutError(),
        ConnectionResetError(),
        aiosmtplib.SMTPServerDisconnected("gone"),
        aiosmtplib.SMTPConnectError("refused"),
        smtp_failure(aiosmtplib.SMTPResponseException(421, "busy"), "a@b.se"),
    ]
    assert [is_permanent(e) for e in permanent] == [True] * len(permanent)
    assert [is_permanent(e) for e in temporary] == [False] * len(temporary)
    refused = aiosmtplib.SMTPRecipientsRefused(
        [aiosmtplib.SMTPRecipientRefused(550, "no such user", "a@b.se")]
    )
    assert isinstance(smtp_failure(refused, "a@b.se"), HardBounce)


def test_contacts_accept_deliverable_international_addresses_and_say_why_not_the_rest() -> None:
    assert normalize_email("Anna.Sjöberg@Example.com") == "anna.sjöberg@example.com"
    assert normalize_email("åsa@FÖRETAG.se") == "åsa@företag.se"
    with pytest.raises(ValueError, match="before the @-sign"):
        normalize_email("anna sjö@example.com")
