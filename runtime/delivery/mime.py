"""Building the MIME message of an email, fast.

The ``email`` package's modern policy parses every header through its header
registry, which costs about 6 ms per message here: more than the SMTP exchange
on a reused connection. The compat32 classes build the same message in well
under 1 ms; this module adds what the modern policy would have given us:
RFC 2047-encoded non-ASCII headers, no header injection through CR/LF in
rendered values, and no folding inside long URLs (``List-Unsubscribe``).
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
from email.utils import formataddr, parseaddr

__all__ = ["compose", "flatten"]

# Quoted-printable keeps mostly-ASCII bodies readable (and greppable) on the wire.
_UTF8 = charset.Charset("utf-8")
_UTF8.body_encoding = charset.QP
# 998 is RFC 5322's hard line limit: long header values are never folded inside a URL.
_POLICY = policy.compat32.clone(max_line_length=998, linesep="\r\n")


def _clean(value: str) -> str:
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


def _header(value: str) -> str:
    cleaned = _clean(value)
    return cleaned if cleaned.isascii() else Header(cleaned, "utf-8").encode()


def _address(value: str) -> str:
    name, address = parseaddr(_clean(value))
    if not address:
        return _header(value)
    return formataddr((name, address), charset="utf-8")


def compose(
    *,
    sender: str,
    to: str,
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
    mail["From"] = _address(sender)
    mail["To"] = _address(to)
    mail["Subject"] = _header(subject)
    for name, value in headers.items():
        mail[_clean(name)] = _header(value)
    return mail


def flatten(mail: Message) -> bytes:
    """The message as bytes on the wire (CRLF line ends)."""
    out = io.BytesIO()
    BytesGenerator(out, policy=_POLICY).flatten(mail)
    return out.getvalue()
