"""Building the MIME message of an email, fast.

The ``email`` package's modern policy parses every header through its header
registry, which costs about 6 ms per message here: more than the SMTP exchange
on a reused connection. The compat32 classes build the same message in well
under 1 ms; this module adds what the modern policy would have given us:
RFC 2047-encoded non-ASCII headers, no header injection through CR/LF in
rendered values, and no folding inside long URLs (``List-Unsubscribe``).
A message to an internationalised address is flattened with the SMTPUTF8
policy (RFC 6532), which writes its UTF-8 address headers as they are.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from email import charset, policy
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from runtime.delivery.address import MailAddress

__all__ = ["compose", "flatten"]

# Quoted-printable keeps mostly-ASCII bodies readable (and greppable) on the wire.
_UTF8 = charset.Charset("utf-8")
_UTF8.body_encoding = charset.QP
# 998 is RFC 5322's hard line limit: long header values are never folded inside a URL.
_POLICY = policy.compat32.clone(max_line_length=998, linesep="\r\n")
_UTF8_POLICY = policy.SMTPUTF8.clone(max_line_length=998, linesep="\r\n")


def _clean(value: str) -> str:
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


def _header(value: str) -> str:
    cleaned = _clean(value)
    return cleaned if cleaned.isascii() else Header(cleaned, "utf-8").encode()


def compose(
    *,
    sender: MailAddress,
    to: MailAddress,
    subject: str,
    text: str,
    html: str | None,
    headers: Mapping[str, str],
) -> Message:
    """A text (and HTML, when given) message with ``headers`` added after the standard ones."""
    plain = MIMEText(text or " ", "plain", _UTF8, policy=_POLICY)  # type: ignore[arg-type]
    if html:
        mail: Message = MIMEMultipart("alternative", policy=_POLICY)
        mail.attach(plain)
        mail.attach(MIMEText(html, "html", _UTF8, policy=_POLICY))  # type: ignore[arg-type]
    else:
        mail = plain
    mail["From"] = sender.header()
    mail["To"] = to.header()
    mail["Subject"] = _header(subject)
    for name, value in headers.items():
        mail[_clean(name)] = _header(value)
    return mail


def flatten(mail: Message, *, utf8: bool = False) -> bytes:
    """The message as bytes on the wire (CRLF line ends); ``utf8`` for an SMTPUTF8 message."""
    out = io.BytesIO()
    BytesGenerator(out, policy=_UTF8_POLICY if utf8 else _POLICY).flatten(mail)
    return out.getvalue()
