"""The pooled SMTP exchange (``runtime.delivery.email._exchange``) against a real server.

A reused connection sends MAIL/RCPT/DATA on aiosmtplib's protocol under one
deadline moved forward before each command, instead of ``SMTP.sendmail``'s
timer per reply. These tests hold it to what ``sendmail`` does: the same
message on the wire, a slow reply still waited for as long as the client's
timeout allows, a stalled one a temporary failure that drops the connection
(never a reply read as the next message's), a 421 closing the connection and
a refused recipient a hard bounce, the next message going out as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email import message_from_bytes
from email.header import decode_header, make_header
from typing import Any

import aiosmtplib
import pytest

from runtime.delivery import HardBounce, Outgoing
from runtime.delivery.email import EmailDeliverer
from runtime.delivery.errors import is_permanent
from tests.support.smtp import smtp_server


class Server:
    """Records every envelope and message; answers slowly or refuses when told to."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []
        self.data_delay = 0.0
        self.rcpt_delay = 0.0
        self.rcpt_answer: str | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.rcpt_delay:
            await asyncio.sleep(self.rcpt_delay)
        if self.rcpt_answer is not None:
            return self.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        return "250 OK queued"


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, int]]:
    with smtp_server(Server(), decode_data=False) as (handler, port):
        yield handler, port


def _message(n: int, to: str = "Åsa Öberg <asa@example.se>") -> Outgoing:
    return Outgoing(
        id=n,
        idempotency_key=f"exchange-{n}",
        channel="email",
        category="transactional",
        payload={"to": to, "subject": f"Hej Åsa {n}", "text": "Räksmörgås", "html": "<p>Hej</p>"},
    )


def _deliverer(port: int, timeout: float = 30.0) -> EmailDeliverer:
    return EmailDeliverer(
        hostname="127.0.0.1", port=port, sender="hej@example.se", pool_size=1, timeout=timeout
    )


def _without_volatile(content: bytes) -> list[tuple[str, str]]:
    mail = message_from_bytes(content)
    volatile = ("Date", "Message-ID", "Subject", "Content-Type")  # the boundary is random
    return [(k, v) for k, v in mail.items() if k not in volatile]


async def test_a_reused_connection_sends_what_sendmail_sent_on_the_first(
    server: tuple[Server, int],
) -> None:
    handler, port = server
    email = _deliverer(port)
    try:
        # The first send greets the server through SMTP.sendmail; the second reuses it.
        first = await email.deliver(_message(1))
        second = await email.deliver(_message(2))
    finally:
        await email.aclose()
    assert email.pool is not None and email.pool.connections_opened == 1
    assert [r[:2] for r in handler.received] == [("hej@example.se", ["asa@example.se"])] * 2
    one, two = (message_from_bytes(r[2]) for r in handler.received)
    assert _without_volatile(handler.received[0][2]) == _without_volatile(handler.received[1][2])
    assert one.get_payload()[0].get_payload() == two.get_payload()[0].get_payload()
    assert (first.detail, second.detail) == ("OK queued", "OK queued")
    assert second.provider_message_id == two["Message-ID"]


async def test_a_slow_reply_within_the_timeout_is_waited_for_on_every_command(
    server: tuple[Server, int],
) -> None:
    handler, port = server
    email = _deliverer(port, timeout=1.0)
    try:
        await email.deliver(_message(1))
        # Each reply takes most of the timeout: together they take longer than one timeout.
        handler.rcpt_delay = handler.data_delay = 0.6
        await email.deliver(_message(2))
    finally:
        await email.aclose()
    assert len(handler.received) == 2
    assert email.pool is not None and email.pool.connections_opened == 1


async def test_a_stalled_reply_is_a_temporary_failure_that_drops_the_connection(
    server: tuple[Server, int],
) -> None:
    handler, port = server
    email = _deliverer(port, timeout=0.3)
    try:
        await email.deliver(_message(1))
        handler.data_delay = 1.0
        with pytest.raises(aiosmtplib.SMTPTimeoutError) as caught:
            await email.deliver(_message(2))
        assert not is_permanent(caught.value)  # retried later, with the same Message-ID
        handler.data_delay = 0.0
        await asyncio.sleep(1.0)  # the late reply reaches no connection of the pool
        third = await email.deliver(_message(3))
    finally:
        await email.aclose()
    assert email.pool is not None and email.pool.connections_opened == 2
    assert third.detail == "OK queued"
    last = message_from_bytes(handler.received[-1][2])
    assert str(make_header(decode_header(str(last["Subject"])))) == "Hej Åsa 3"


@pytest.mark.parametrize(
    ("answer", "refused", "permanent"),
    [
        # A server going away: the connection is closed and the message tried again later.
        ("421 shutting down", aiosmtplib.SMTPRecipientsRefused, False),
        # A recipient that does not exist: a bounce, never tried again.
        ("550 no such user", HardBounce, True),
    ],
)
async def test_a_refused_recipient_drops_the_connection_and_the_next_message_goes_out(
    server: tuple[Server, int], answer: str, refused: type[Exception], permanent: bool
) -> None:
    handler, port = server
    email = _deliverer(port)
    try:
        await email.deliver(_message(1))
        handler.rcpt_answer = answer
        with pytest.raises(refused) as caught:
            await email.deliver(_message(2, to="nobody@example.se"))
        assert is_permanent(caught.value) is permanent
        handler.rcpt_answer = None
        await email.deliver(_message(3))
    finally:
        await email.aclose()
    # The pool drops a connection whose send raised; the next message had a new one.
    assert email.pool is not None and email.pool.connections_opened == 2
    assert [r[1] for r in handler.received] == [["asa@example.se"], ["asa@example.se"]]
