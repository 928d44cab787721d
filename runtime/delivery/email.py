"""The "email" channel: SMTP through a pool of reused aiosmtplib connections.

Payload: ``nodes.sdk.EmailPayload`` (``to``, ``subject``, ``text``, ``html``, ``from``...).
The Message-ID is derived from the outbox idempotency key, so a delivery retried
after a lost acknowledgement carries the same Message-ID and receivers (and our
own bounce and tracking handling) can recognise the duplicate.

With a ``LinkSigner``, marketing mail gets the unsubscribe footer and RFC 8058
headers, and (with tracking on) signed click links and an open pixel
(``runtime.messaging.tracking``).

Addresses: domains go out in IDNA; an address with non-ASCII letters before
the @ goes out with SMTPUTF8 when the server offers it, and is a permanent
failure with a reason a marketer understands when it does not
(``runtime.delivery.address``).

Failures are classified by ``runtime.delivery.errors``: a recipient refused
with 5xx is a ``HardBounce`` (suppressed from then on); any other 5xx, a bad
address or one the server cannot take is permanent; 4xx answers, timeouts and
dropped connections are temporary and the outbox retries them with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import html as htmllib
import time
from email.message import Message
from email.utils import formatdate, parseaddr
from typing import Any

import aiosmtplib
from aiosmtplib.protocol import normalize_message_line_endings
from aiosmtplib.response import SMTPResponse
from aiosmtplib.typing import SMTPStatus

from nodes.sdk.payloads import EmailPayload
from runtime.delivery import (
    DEFAULT_CONCURRENCY,
    Delivered,
    Outgoing,
    PermanentError,
    read_payload,
)
from runtime.delivery.address import PLAIN_ADDRESS, MailAddress, parse_address
from runtime.delivery.errors import smtp_failure
from runtime.delivery.mime import compose, flatten, wire
from runtime.delivery.smtp_pool import SmtpPool
from runtime.messaging.links import LinkSigner
from runtime.messaging.tracking import decorate

__all__ = ["CaptureDeliverer", "EmailDeliverer", "message_id_for"]


def message_id_for(idempotency_key: str, sender: str) -> str:
    """A stable RFC 5322 Message-ID for an outbox message."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<tf.{digest}@{_id_domain(sender)}>"


@functools.lru_cache(maxsize=256)
def _id_domain(sender: str) -> str:
    # A process sends from a handful of addresses: parse each once.
    domain = parseaddr(sender)[1].rpartition("@")[2] or "touchflow.invalid"
    return domain if domain.isascii() else "touchflow.invalid"


@functools.lru_cache(maxsize=4096)
def _address(raw: str) -> MailAddress:
    # Parsed addresses are immutable: the sender's (the same on every message) is parsed once.
    return parse_address(raw)


_date: tuple[int, str] = (-1, "")


def _date_header() -> str:
    """The Date header for now: formatted once a second (the header has no finer unit),
    not for every message."""
    global _date
    second = int(time.time())
    if _date[0] != second:
        _date = (second, formatdate(second, localtime=False))
    return _date[1]


def _message_id(headers: dict[str, str]) -> str | None:
    # The first Message-ID header, as ``Message.__getitem__`` would find it.
    for name, value in headers.items():
        if name.strip().lower() == "message-id":
            return value
    return None


def _with_preheader(body: str, preheader: str) -> str:
    # The hidden first text of the body is what inboxes show next to the subject.
    hidden = (
        '<div style="display:none;max-height:0;overflow:hidden">'
        f"{htmllib.escape(preheader)}</div>\n"
    )
    return hidden + body


# An envelope address aiosmtplib would pass through unchanged: its check (``parseaddr``
# and a scan for whitespace, angle brackets and quotes, twice per address and send) can be
# skipped for it. Anything else goes through ``SMTP.sendmail`` as before.
_PLAIN_ENVELOPE = PLAIN_ADDRESS


async def _transact(
    client: aiosmtplib.SMTP, sender: MailAddress, to: MailAddress, raw: bytes, options: list[str]
) -> str:
    """One MAIL/RCPT/DATA exchange; the server's answer to DATA.

    ``SMTP.sendmail`` with one recipient, without parsing the addresses again:
    ours are checked already (``runtime.delivery.address``). The same commands,
    options, errors and envelope reset on a refusal; a connection that has not
    greeted the server yet, or an address that is not plain, takes
    ``sendmail`` itself.
    """
    envelope = (sender.envelope, to.envelope)
    if client.is_ehlo_or_helo_needed or not all(map(_PLAIN_ENVELOPE.fullmatch, envelope)):
        response = await client.sendmail(envelope[0], [envelope[1]], raw, mail_options=options)
        return response[1]
    utf8 = any(option.lower() == "smtputf8" for option in options)
    if utf8 and not client.supports_extension("smtputf8"):
        raise aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server")
    encoding = "utf-8" if utf8 else "ascii"
    arguments = [option.encode("ascii") for option in options]
    if client.supports_extension("size"):
        arguments.insert(0, f"size={len(normalize_message_line_endings(raw))}".encode())
    try:
        answer = await _exchange(client, envelope, arguments, raw, encoding)
    except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
        with contextlib.suppress(ConnectionError, aiosmtplib.SMTPResponseException):
            await client.rset()  # as sendmail: leave no half-finished envelope on the server
        raise
    return answer.message


async def _exchange(
    client: aiosmtplib.SMTP,
    envelope: tuple[str, str],
    arguments: list[bytes],
    raw: bytes,
    encoding: str,
) -> SMTPResponse:
    """MAIL, RCPT and DATA on the connection's protocol, under one rescheduled deadline.

    ``SMTP.execute_command`` and ``SMTP.data`` wrap every reply in ``asyncio.wait_for``
    (a future, a timer and callbacks per read: a tenth of the CPU of a send on a reused
    connection). Here one ``asyncio.timeout`` is moved forward before each command
    instead: a reply still has the client's ``timeout`` (DATA, whose two replies were
    waited for separately, has twice that for both), and what aiosmtplib does on a
    timeout, a lost connection or a 421 is done here too: the connection is closed, so
    the pool never reuses a connection whose replies may be out of step.
    """
    protocol = client.protocol
    if protocol is None:  # as ``SMTP.execute_command`` says of a connection that is gone
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    loop = asyncio.get_running_loop()
    step = client.timeout

    def after(replies: int) -> float | None:  # no timeout set: no deadline
        return None if step is None else loop.time() + replies * step

    try:
        async with asyncio.timeout_at(after(1)) as deadline:
            answer = await protocol.execute_command(
                b"MAIL", b"FROM:<" + envelope[0].encode(encoding) + b">", *arguments
            )
            _check_421(client, answer)
            if answer.code != SMTPStatus.completed:
                raise aiosmtplib.SMTPSenderRefused(answer.code, answer.message, envelope[0])
            deadline.reschedule(after(1))
            answer = await protocol.execute_command(
                b"RCPT", b"TO:<" + envelope[1].encode(encoding) + b">"
            )
            _check_421(client, answer)
            if answer.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
                raise aiosmtplib.SMTPRecipientsRefused(
                    [aiosmtplib.SMTPRecipientRefused(answer.code, answer.message, envelope[1])]
                )
            deadline.reschedule(after(2))
            return await protocol.execute_data_command(raw)
    except TimeoutError as exc:
        client.close()  # a reply given up on would be read as the next command's
        if isinstance(exc, aiosmtplib.SMTPTimeoutError):
            raise
        raise aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response") from exc
    except aiosmtplib.SMTPServerDisconnected:
        client.close()
        raise


def _check_421(client: aiosmtplib.SMTP, answer: SMTPResponse) -> None:
    # As ``SMTP.execute_command``: a server shutting down gets the connection closed.
    if answer.code == SMTPStatus.domain_unavailable:
        client.close()


class EmailDeliverer:
    """Builds each message (with tracking and unsubscribe links) and sends it over SMTP.

    ``pool_size`` connections are reused across messages; ``pool_size=0`` opens
    one connection per message (kept for comparison in the benchmark).
    """

    def __init__(
        self,
        *,
        hostname: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        start_tls: bool = False,
        timeout: float = 30.0,
        pool_size: int = 4,
        links: LinkSigner | None = None,
        tracking: bool = True,
        idle_check: float = 5.0,
    ) -> None:
        self.hostname = hostname
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.use_tls = use_tls
        self.start_tls = start_tls
        self.timeout = timeout
        self.links = links
        self.tracking = tracking
        self.pool = SmtpPool(self._client, pool_size, idle_check) if pool_size > 0 else None
        # Messages in flight: one per pooled connection (the outbox holds the rest back).
        self.concurrency = pool_size if pool_size > 0 else DEFAULT_CONCURRENCY

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.hostname,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            start_tls=self.start_tls,
            timeout=self.timeout,
        )

    def addresses(self, message: Outgoing) -> tuple[MailAddress, MailAddress]:
        """Sender and recipient, checked, with their domains in IDNA."""
        payload = read_payload(EmailPayload, message)
        if not payload.to:
            raise PermanentError("the email has no recipient")
        return parse_address(payload.sender or self.sender), parse_address(payload.to)

    def _content(self, message: Outgoing) -> dict[str, Any]:
        """What ``compose`` and ``wire`` take: addresses, subject, bodies, extra headers."""
        payload = read_payload(EmailPayload, message)
        if not payload.to:
            raise PermanentError("the email has no recipient")
        sender_address = _address(payload.sender or self.sender)
        to_address = _address(payload.to)
        text = payload.text
        body = payload.html or None
        if body is not None and payload.preheader:
            body = _with_preheader(body, payload.preheader)
        headers: dict[str, str] = {}
        if self.links is not None:
            decorated = decorate(
                message_id=message.id,
                contact_id=message.contact_id,
                marketing=message.category == "marketing",
                html_body=body,
                text_body=text,
                signer=self.links,
                tracking=self.tracking and payload.track,
                locale=message.extras.get("locale"),
            )
            body, text, headers = decorated.html, decorated.text, decorated.headers
        standard = {
            "Date": _date_header(),
            "Message-ID": message_id_for(message.idempotency_key, sender_address.envelope),
        }
        return {
            "sender": sender_address,
            "to": to_address,
            "subject": payload.subject,
            "text": text,
            "html": body,
            "headers": {**standard, **payload.headers, **headers},
        }

    def build(self, message: Outgoing) -> Message:
        """The MIME message exactly as it will be sent (the same for every attempt)."""
        return compose(**self._content(message))

    async def deliver(self, message: Outgoing) -> Delivered:
        content = self._content(message)
        sender, to = content["sender"], content["to"]
        utf8 = sender.needs_smtputf8 or to.needs_smtputf8
        # SMTPUTF8 only when an address needs it: aiosmtplib refuses the send before
        # MAIL FROM when the server does not offer it, which is a permanent failure.
        options = ["SMTPUTF8"] if utf8 else []
        raw = wire(**content)
        if raw is None:
            raw = flatten(compose(**content), utf8=utf8)
        try:
            if self.pool is None:
                async with self._client() as client:
                    answer = await _transact(client, sender, to, raw, options)
            else:
                async with self.pool.connection() as client:
                    answer = await _transact(client, sender, to, raw, options)
        except Exception as exc:
            failure = smtp_failure(exc, f"{to.local}@{to.domain}")
            if failure is exc:
                raise
            raise failure from exc
        return Delivered(provider_message_id=_message_id(content["headers"]), detail=answer[:500])

    async def aclose(self) -> None:
        """Close the pooled connections (on shutdown)."""
        if self.pool is not None:
            await self.pool.aclose()


class CaptureDeliverer(EmailDeliverer):
    """Development mail catcher: builds every email as for real and keeps it instead of sending.

    The caught message (headers and both parts) is returned as the delivery's
    detail, which the delivery ledger stores and the Outbox page shows.
    """

    def __init__(self, *, sender: str, links: LinkSigner | None = None) -> None:
        super().__init__(hostname="", port=0, sender=sender, pool_size=0, links=links)

    async def deliver(self, message: Outgoing) -> Delivered:
        sender, to = self.addresses(message)
        mail = self.build(message)
        utf8 = sender.needs_smtputf8 or to.needs_smtputf8
        raw = flatten(mail, utf8=utf8).decode("utf-8", "replace").replace("\r\n", "\n")
        return Delivered(provider_message_id=mail["Message-ID"], detail=raw)
