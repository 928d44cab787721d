"""The outbox's cheap paths (issue 15) keep every behaviour of the paths they replace.

- a plain address is taken apart without ``parseaddr`` into what ``parseaddr`` finds;
- on a connection that greeted the server, a send skips aiosmtplib's second parsing
  of the addresses but says the same commands (envelope, SIZE, SMTPUTF8), classifies
  a refusal the same way;
- on PostgreSQL the result statement says which messages a journey waits for, and
  messages nobody waits for cost no outcome query after the claim;
- stale messages are put back at most every tenth of a lease, not by every claim;
- the open pixel's link is the token ``LinkSigner.dumps`` would make.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiosmtplib.email import quote_address
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.claims import claim_outbox
from runtime.clock import FakeClock
from runtime.delivery import HardBounce, Outgoing
from runtime.delivery.address import PLAIN_ADDRESS, parse_address
from runtime.delivery.email import EmailDeliverer
from runtime.engine import Runtime
from runtime.messaging.links import LinkSigner
from runtime.messaging.suppression import suppress
from runtime.models import OutboxStatus, SuppressionReason
from runtime.outbox import RELEASE_EVERY, _Recorder
from tests.runtime.delivery.conftest import outbox_row, queue
from tests.support.smtp import smtp_server

_LOCAL = st.text(
    alphabet=st.sampled_from("abcåäöé.+-_'%!#$&*=?^`{|}~/0123456789\"()<>,;:@[]\\ \t"),
    min_size=1,
    max_size=12,
)
_DOMAIN = st.text(alphabet=st.sampled_from("abcxyz.-09ö"), min_size=1, max_size=10)


@given(local=_LOCAL, domain=_DOMAIN)
def test_a_plain_address_is_what_parseaddr_finds_in_it(local: str, domain: str) -> None:
    raw = f"{local}@{domain}"
    if not PLAIN_ADDRESS.fullmatch(raw):
        return
    # A leading space takes the full path (parseaddr), which drops the space again.
    assert parse_address(raw) == parse_address(f" {raw}")
    # aiosmtplib would have put the same address on the MAIL and RCPT lines.
    assert quote_address(raw) == f"<{raw}>"


def test_what_is_not_plain_takes_the_full_path() -> None:
    for raw in ("Anna <anna@example.se>", "anna@företag.se", '"a b"@example.se', "a@b@c.se"):
        assert not PLAIN_ADDRESS.fullmatch(raw)
    assert parse_address("anna@företag.se").ascii_domain == "xn--fretag-wxa.se"
    assert parse_address("Kund@Example.SE").ascii_domain == "example.se"


@dataclass
class Envelopes:
    """Each transaction as the server saw it; RCPT TO refused for addresses starting "nobody"."""

    received: list[tuple[str, list[str], list[str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.startswith("nobody"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.received.append(
                (
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    list(envelope.mail_options),
                    envelope.original_content,
                )
            )
        return "250 OK"


@pytest.fixture
def server() -> Iterator[tuple[Envelopes, int]]:
    with smtp_server(Envelopes(), enable_SMTPUTF8=True, decode_data=False) as running:
        yield running


def _message(n: int, to: str) -> Outgoing:
    return Outgoing(
        id=n,
        idempotency_key="same-key",
        channel="email",
        payload={"to": to, "subject": "Hej Åsa", "text": "Välkommen!"},
        category="transactional",
    )


@pytest.mark.parametrize(
    "to",
    ["kund@example.se", "anna.sjöberg@example.com", "Åsa Öberg <info@företag.se>"],
)
async def test_a_reused_connection_sends_what_a_new_one_sends(
    server: tuple[Envelopes, int], to: str
) -> None:
    handler, port = server
    email = EmailDeliverer(
        hostname="127.0.0.1", port=port, sender="Shop <hi@shop.test>", pool_size=1
    )
    try:
        # The first send greets the server (``sendmail``); the second reuses the connection.
        first = await email.deliver(_message(1, to))
        second = await email.deliver(_message(2, to))
    finally:
        await email.aclose()
    assert email.pool is not None and email.pool.connections_opened == 1
    assert first.provider_message_id == second.provider_message_id
    [(from_1, rcpt_1, options_1, raw_1), (from_2, rcpt_2, options_2, raw_2)] = handler.received
    assert (from_2, rcpt_2, options_2) == (from_1, rcpt_1, options_1)
    assert len(raw_2) == len(raw_1)  # the same message (its Date may differ by a second)
    assert any(o.upper().startswith("SIZE=") for o in options_2)
    assert ("SMTPUTF8" in options_2) == ("sjöberg" in to)


async def test_a_refused_recipient_on_a_reused_connection_is_a_hard_bounce_and_the_next_goes(
    server: tuple[Envelopes, int],
) -> None:
    handler, port = server
    email = EmailDeliverer(hostname="127.0.0.1", port=port, sender="hi@shop.test", pool_size=1)
    try:
        await email.deliver(_message(1, "kund@example.se"))
        with pytest.raises(HardBounce) as refused:
            await email.deliver(_message(2, "nobody@example.se"))
        await email.deliver(_message(3, "kund2@example.se"))
    finally:
        await email.aclose()
    assert refused.value.address == "nobody@example.se" and "550" in str(refused.value)
    assert [rcpt for _, rcpt, _, _ in handler.received] == [
        ["kund@example.se"],
        ["kund2@example.se"],
    ]


async def test_messages_nobody_waits_for_cost_no_outcome_query(
    gated: Runtime, engine: AsyncEngine
) -> None:
    ids = [
        await queue(
            gated, None, {"to": f"kund{n}@example.se", "subject": "Hej"}, category="transactional"
        )
        for n in range(5)
    ]
    asked: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "wait_event_type" in statement and "UPDATE" not in statement:
            asked.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        report = await gated.deliver()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert report.sent == 5
    assert [(await outbox_row(gated, n)).status for n in ids] == [OutboxStatus.sent.value] * 5
    # PostgreSQL learns it from the result statement; SQLite still asks once per claim.
    assert len(asked) == (0 if gated.on_postgresql else 1)


async def test_stale_messages_are_put_back_at_most_every_tenth_of_a_lease(
    gated: Runtime, clock: FakeClock
) -> None:
    message_id = await queue(
        gated, None, {"to": "kund@example.se", "subject": "Hej"}, category="transactional"
    )
    async with gated.sessions() as session, session.begin():  # a sender that then dies
        await claim_outbox(session, owner="dead", now=clock.now(), limit=10, lease=gated.lease)
    clock.advance(gated.lease - timedelta(milliseconds=1))
    assert (await gated.deliver()).claimed == 0  # looks for stale messages: none yet
    clock.advance(timedelta(milliseconds=2))  # the dead sender's lease has run out
    # Within a tenth of a lease of the last look, a claim does not look again...
    assert (await gated.deliver()).claimed == 0
    assert (await outbox_row(gated, message_id)).status == OutboxStatus.sending.value
    # ...after it, the claim puts the message back and sends it.
    clock.advance(gated.lease / RELEASE_EVERY)
    report = await gated.deliver()
    assert (report.claimed, report.sent) == (1, 1)
    row = await outbox_row(gated, message_id)
    assert (row.status, row.attempts) == (OutboxStatus.sent.value, 2)


@given(message_id=st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_the_open_link_is_the_token_dumps_makes(message_id: int) -> None:
    signer = LinkSigner(secret="test-secret", base_url="http://touchflow.test/")
    token = signer.open_url(message_id).rpartition("/")[2].removesuffix(".gif")
    assert token == signer.dumps("open", {"m": message_id})
    assert signer.loads("open", token) == {"m": message_id}


async def test_a_claim_withholds_the_listed_addresses_of_its_batch(
    gated: Runtime, clock: FakeClock
) -> None:
    async with gated.sessions() as session, session.begin():
        for address, reason in (
            ("bounced@example.se", SuppressionReason.hard_bounce),
            ("optout@example.se", SuppressionReason.unsubscribed),
        ):
            await suppress(
                session, channel="email", address=address, reason=reason, now=clock.now()
            )
    ids = {
        to: await queue(gated, None, {"to": to, "subject": "Kvitto"}, category="transactional")
        for to in ("bounced@example.se", "optout@example.se", "kund@example.se")
    }
    report = await gated.deliver()
    assert (report.claimed, report.sent, report.withheld) == (3, 2, 1)
    statuses = {to: (await outbox_row(gated, n)).status for to, n in ids.items()}
    # A bounced address takes nothing; an opt-out still gets its receipts.
    assert statuses == {
        "bounced@example.se": OutboxStatus.suppressed.value,
        "optout@example.se": OutboxStatus.sent.value,
        "kund@example.se": OutboxStatus.sent.value,
    }


async def test_a_result_group_that_fails_fails_alone_and_the_next_is_recorded(
    gated: Runtime, clock: FakeClock, engine: AsyncEngine
) -> None:
    message_id = await queue(
        gated, None, {"to": "kund@example.se", "subject": "Hej"}, category="transactional"
    )
    async with gated.sessions() as session, session.begin():
        await claim_outbox(session, owner="me", now=clock.now(), limit=10, lease=gated.lease)
    recorder = _Recorder(gated)
    sent = {
        "o_id": message_id,
        "o_owner": "me",
        "o_status": OutboxStatus.sent.value,
        "o_next": clock.now(),
        "o_error": None,
        "o_reason": None,
        "o_provider_id": "<tf.1@shop.test>",
        "o_sent_at": clock.now(),
    }
    with pytest.raises(Exception):  # noqa: B017 - the database refuses a malformed time
        await recorder.record({**sent, "o_next": "not a time"}, None)
    checked_out = engine.pool.checkedout()  # type: ignore[attr-defined]
    # A journey may wait on it only as far as SQLite can tell (it does not say).
    assert await recorder.record(sent, None) is (not gated.on_postgresql)
    assert recorder.flushing is not None
    await recorder.flushing
    assert engine.pool.checkedout() == checked_out  # type: ignore[attr-defined]
    row = await outbox_row(gated, message_id)
    assert (row.status, row.provider_message_id) == (OutboxStatus.sent.value, "<tf.1@shop.test>")
