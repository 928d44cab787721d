"""Email addresses as they go on the wire: IDNA for domains, SMTPUTF8 for local parts.

``anna@exämple.se`` goes out as ``anna@xn--exmple-cua.se`` to any server. An
address whose part before the @ is not ASCII (``anna.sjöberg@example.com``)
can only travel with SMTPUTF8 (RFC 6531): the envelope and the headers carry it
as UTF-8, and a server that does not offer the extension cannot take it, a
permanent failure (``runtime.delivery.errors.NO_SMTPUTF8``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from email.header import Header
from email.utils import parseaddr

import idna

from runtime.delivery import PermanentError

__all__ = ["PLAIN_ADDRESS", "BadAddress", "MailAddress", "encoded_words", "parse_address"]


class BadAddress(PermanentError):
    """An address that no mail server could accept as written."""


@dataclass(frozen=True)
class MailAddress:
    name: str
    local: str
    domain: str  # as written (may be Unicode)
    ascii_domain: str  # IDNA A-labels

    @property
    def needs_smtputf8(self) -> bool:
        return not self.local.isascii()

    @property
    def envelope(self) -> str:
        """For MAIL FROM / RCPT TO: the domain always in A-labels."""
        return f"{self.local}@{self.ascii_domain}"

    def header(self) -> str:
        """For From/To: UTF-8 as written when the local part needs it, else all ASCII."""
        address = f"{self.local}@{self.domain}" if self.needs_smtputf8 else self.envelope
        if not self.name:
            return address
        name = self.name if self.name.isascii() else encoded_words(self.name)
        if name.isascii() and any(c in name for c in '(),.:;<>@[]"\\'):
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{name} <{address}>"


@functools.lru_cache(maxsize=4096)
def encoded_words(value: str) -> str:
    """``value`` as RFC 2047 encoded words (``Header(value, "utf-8").encode()``), cached:
    the ``email`` package's encoder takes a few hundred microseconds for a short
    subject or display name, and a first name recurs across many contacts."""
    return Header(value, "utf-8").encode()


def _clean(value: str) -> str:
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


# ``local@domain`` with nothing ``parseaddr`` would read as a name, comment, quote, route
# or list, and an ASCII domain: what it finds in such an address is the address itself.
# Most addresses are like this; ``parse_address`` takes them apart without it.
PLAIN_ADDRESS = re.compile(r"[^\s<>\"()\[\]\\,;:@\x00-\x1f\x7f]+@[A-Za-z0-9.-]+")


def parse_address(raw: str) -> MailAddress:
    """``Name <local@domain>`` or ``local@domain``, checked and with the domain in IDNA."""
    if PLAIN_ADDRESS.fullmatch(raw):
        local, _, domain = raw.rpartition("@")
        return MailAddress(name="", local=local, domain=domain, ascii_domain=domain.lower())
    cleaned = _clean(raw)
    name, address = parseaddr(cleaned)
    local, at, domain = address.rpartition("@")
    # parseaddr is forgiving (it drops spaces in a domain): what it found must be as written.
    if not at or not local or not domain or address not in cleaned or " " in address:
        raise BadAddress(f"“{raw}” is not an email address")
    if any(ord(c) < 32 or ord(c) == 127 for c in address):
        raise BadAddress(f"“{raw}” contains control characters")
    try:
        ascii_domain = (
            domain if domain.isascii() else idna.encode(domain, uts46=True).decode("ascii")
        )
    except idna.IDNAError as exc:
        raise BadAddress(f"the domain of “{raw}” is not a valid domain name ({exc})") from exc
    return MailAddress(name=name, local=local, domain=domain, ascii_domain=ascii_domain.lower())
