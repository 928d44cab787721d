"""Double opt-in: a signed, expiring confirmation link for email consent.

The token carries the form and contact ids, when it was issued and the
submission's event (the claim the click verifies; 0 in links sent before
claims existed), signed
with HMAC-SHA256 under the app's secret key (the idea of itsdangerous, in a
dozen lines). Nothing is stored until the person clicks: consent is recorded
on confirmation only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

MAX_AGE_SECONDS = 7 * 24 * 3600
_SALT = b"touchflow.form-optin."


@dataclass(frozen=True)
class OptIn:
    form_id: int
    contact_id: int
    issued_at: int
    event_id: int = 0


class BadToken(ValueError):
    """The link was altered, belongs to another installation, or is too old."""


def _mac(secret: str, payload: bytes) -> str:
    digest = hmac.new(_SALT + secret.encode(), payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_optin(secret: str, optin: OptIn) -> str:
    """The URL-safe token for a confirmation link."""
    body = json.dumps([optin.form_id, optin.contact_id, optin.issued_at, optin.event_id]).encode()
    encoded = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
    return f"{encoded}.{_mac(secret, encoded.encode())}"


def read_optin(secret: str, token: str, now: float) -> OptIn:
    """Check a token's signature and age; raises ``BadToken``."""
    encoded, _, mac = token.partition(".")
    if not encoded or not hmac.compare_digest(mac, _mac(secret, encoded.encode())):
        raise BadToken("signature")
    try:
        form_id, contact_id, issued_at, *event = json.loads(
            base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        )
        optin = OptIn(int(form_id), int(contact_id), int(issued_at), int(event[0]) if event else 0)
    except (ValueError, TypeError) as exc:
        raise BadToken("payload") from exc
    if not 0 <= now - optin.issued_at <= MAX_AGE_SECONDS:
        raise BadToken("expired")
    return optin


# The browser that sent a double opt-in form keeps this cookie (on Touchflow's
# origin, so the confirmation page reads it whatever site the form was on): the
# owner confirming in that same browser also verifies it. Only the server can
# make one, and it names one submission.
CLAIM_COOKIE = "tf_claim"


def claim_cookie(secret: str, event_id: int, visitor_id: str) -> str:
    """The cookie value binding this browser (its snippet's visitor) to submission ``event_id``."""
    body = f"{event_id}.{visitor_id}"
    return f"{body}.{_mac(secret, b'claim:' + body.encode())}"


def claimed_by(secret: str, value: str | None) -> tuple[int, str] | None:
    """The submission and visitor a ``claim_cookie`` value names; None when absent or altered."""
    body, _, mac = (value or "").rpartition(".")
    event, _, visitor = body.partition(".")
    if not event.isdigit() or not visitor:
        return None
    if not hmac.compare_digest(mac, _mac(secret, b"claim:" + body.encode())):
        return None
    return int(event), visitor
