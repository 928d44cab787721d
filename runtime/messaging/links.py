"""Signed tokens for the public messaging links: opens, clicks, unsubscribe, SMS callbacks.

A token is ``<base64url(JSON claims)>.<base64url(HMAC-SHA256)[:22]>``. The key
is derived from SECRET_KEY and a purpose label, so a click token cannot be
replayed as an unsubscribe token. Claims carry the outbox message id (and for
clicks the destination URL), so links cannot be enumerated or pointed elsewhere
(no open redirect) without the secret.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["BadToken", "LinkSigner"]


class BadToken(ValueError):
    """The token was not made by us for this purpose (or was damaged on the way)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@functools.lru_cache(maxsize=64)
def _purpose_key(secret: str, purpose: str) -> bytes:
    # Derived once per purpose, not once per link: every email signs an open and a click link.
    return hmac.new(secret.encode(), f"touchflow.messaging.{purpose}".encode(), "sha256").digest()


@dataclass(frozen=True)
class LinkSigner:
    """Makes and reads the public links of messages, rooted at ``base_url``."""

    secret: str
    base_url: str

    def _mac(self, purpose: str, body: str) -> str:
        key = _purpose_key(self.secret, purpose)
        return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest()[:16])

    def dumps(self, purpose: str, claims: dict[str, Any]) -> str:
        """A token for ``claims`` usable only for ``purpose``."""
        body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self._mac(purpose, body)}"

    def loads(self, purpose: str, token: str) -> dict[str, Any]:
        """The claims of a token made by ``dumps(purpose, ...)``; raises ``BadToken`` otherwise."""
        body, _, mac = token.partition(".")
        if not body or not mac or not hmac.compare_digest(mac, self._mac(purpose, body)):
            raise BadToken("the link is not valid")
        try:
            claims = json.loads(_unb64(body))
        except (binascii.Error, ValueError) as exc:
            raise BadToken("the link is damaged") from exc
        if not isinstance(claims, dict):
            raise BadToken("the link is damaged")
        return claims

    def url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}{path}"

    def open_url(self, message_id: int) -> str:
        if type(message_id) is not int:
            return self.url(f"/t/o/{self.dumps('open', {'m': message_id})}.gif")
        # Every tracked email has one: its claims written out directly, as ``dumps`` would.
        body = _b64(b'{"m":%d}' % message_id)
        return self.url(f"/t/o/{body}.{self._mac('open', body)}.gif")

    def click_url(self, message_id: int, target: str) -> str:
        return self.url(f"/t/c/{self.dumps('click', {'m': message_id, 'u': target})}")

    def unsubscribe_url(self, message_id: int, contact_id: int | None, channel: str) -> str:
        claims = {"m": message_id, "c": contact_id, "ch": channel}
        return self.url(f"/u/{self.dumps('unsubscribe', claims)}")

    def preferences_url(self, contact_id: int) -> str:
        return self.url(f"/preferences/{self.dumps('preferences', {'c': contact_id})}")

    def sms_status_url(self, message_id: int) -> str:
        return self.url(f"/hooks/sms/status/{self.dumps('sms-status', {'m': message_id})}")

    def sms_inbound_token(self) -> str:
        return self.dumps("sms-inbound", {"v": 1})

    def sms_inbound_url(self) -> str:
        """Where the SMS provider posts replies (configure it on the number)."""
        return self.url(f"/hooks/sms/inbound/{self.sms_inbound_token()}")

    def email_bounce_url(self) -> str:
        """Where an email provider posts bounce and complaint notifications."""
        return self.url(f"/hooks/email/bounce/{self.dumps('email-bounce', {'v': 1})}")
