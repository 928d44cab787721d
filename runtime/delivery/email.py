"""The "email" channel: SMTP through aiosmtplib.

Payload: ``{"to", "subject", "html", "text", "from"?, "headers"?}``. The
Message-ID is derived from the outbox idempotency key, so a delivery retried
after a lost acknowledgement carries the same Message-ID and receivers (and
our own bounce and tracking handling) can recognise the duplicate.
"""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib

from runtime.delivery import Delivered, Outgoing, PermanentError

__all__ = ["EmailDeliverer", "message_id_for"]


def message_id_for(idempotency_key: str, sender: str) -> str:
    """A stable RFC 5322 Message-ID for an outbox message."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "touchflow.invalid"
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"<tf.{digest}@{domain}>"


class EmailDeliverer:
    """Sends each message over its own SMTP connection (pooling can come later)."""

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
    ) -> None:
        self.hostname = hostname
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.use_tls = use_tls
        self.start_tls = start_tls
        self.timeout = timeout

    def build(self, message: Outgoing) -> EmailMessage:
        payload = message.payload
        to = payload.get("to")
        if not to:
            raise PermanentError("the email has no recipient")
        sender = str(payload.get("from") or self.sender)
        mail = EmailMessage()
        mail["From"] = sender
        mail["To"] = str(to)
        mail["Subject"] = str(payload.get("subject", ""))
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = message_id_for(message.idempotency_key, sender)
        for name, value in dict(payload.get("headers") or {}).items():
            mail[str(name)] = str(value)
        text = str(payload.get("text") or "")
        html = payload.get("html")
        mail.set_content(text or " ")
        if html:
            mail.add_alternative(str(html), subtype="html")
        return mail

    async def deliver(self, message: Outgoing) -> Delivered:
        mail = self.build(message)
        try:
            await aiosmtplib.send(
                mail,
                hostname=self.hostname,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.use_tls,
                start_tls=self.start_tls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise PermanentError(f"the mail server refused the recipient: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise PermanentError(f"the mail server refused the message: {exc}") from exc
            raise
        return Delivered(provider_message_id=mail["Message-ID"])
