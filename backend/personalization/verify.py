"""The two proofs that turn a browser's claim into a verified identity.

1. **A signed identify token** from the site's own backend: a compact JWT
   (HS256) whose key is the site key's identify secret, with ``email`` and/or
   ``external_id`` (``sub`` is read as the external id) and ``exp``. The site
   signs it for the person signed in on its pages; a browser cannot make one.
2. **A link Touchflow emailed**: a tracked click (or a double opt-in
   confirmation) sends the person on with ``tf_verify=<token>`` in the URL; the
   snippet on that page redeems it for the browser it runs in. The token names
   the contact and expires within the hour, so a link forwarded later proves
   nothing.

Both are HMAC-SHA256 under secrets derived from the app's ``SECRET_KEY``:
nothing is stored, and a new ``SECRET_KEY`` retires every secret at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "LINK_MAX_AGE_SECONDS",
    "LINK_PARAMETER",
    "BadToken",
    "SignedIdentity",
    "identify_secret",
    "read_identify_token",
    "read_link_token",
    "sign_identify_token",
    "sign_link_token",
    "with_link_token",
]

LINK_PARAMETER = "tf_verify"
LINK_MAX_AGE_SECONDS = 3600
# A signed identify token may live at most this long (the site signs a fresh one per page).
IDENTIFY_MAX_LIFETIME_SECONDS = 7 * 24 * 3600
_IDENTIFY_SALT = b"touchflow.identify-secret."
_LINK_SALT = b"touchflow.visitor-link."


class BadToken(ValueError):
    """Altered, signed with another secret, expired, or not shaped as documented."""


@dataclass(frozen=True)
class SignedIdentity:
    """Who a valid identify token names."""

    email: str | None
    external_id: str | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def identify_secret(app_secret: str, site_key: str) -> str:
    """The secret a site's backend signs identify tokens with (shown to admins per site key)."""
    digest = hmac.new(_IDENTIFY_SALT + app_secret.encode(), site_key.encode(), hashlib.sha256)
    return "tfi_" + _b64(digest.digest())


def sign_identify_token(secret: str, claims: dict[str, Any]) -> str:
    """What the site's backend does (the docs show it in Python and JavaScript)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(mac)}"


def read_identify_token(secret: str, token: str, now: float) -> SignedIdentity:
    """Check an identify token's signature, algorithm and expiry; raises ``BadToken``."""
    parts = token.split(".")
    if len(parts) != 3:
        raise BadToken("the token is not a JWT (header.payload.signature)")
    header, body, mac = parts
    expected = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    try:
        given = _unb64(mac)
        head = json.loads(_unb64(header))
        claims = json.loads(_unb64(body))
    except (ValueError, TypeError) as exc:
        raise BadToken("the token is not valid base64url JSON") from exc
    if not hmac.compare_digest(given, expected):
        raise BadToken("the signature does not match this site key's identify secret")
    if not isinstance(head, dict) or head.get("alg") != "HS256" or not isinstance(claims, dict):
        raise BadToken("the token must be signed with HS256")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= now:
        raise BadToken("the token has expired (or has no exp)")
    if exp > now + IDENTIFY_MAX_LIFETIME_SECONDS:
        raise BadToken("the token lives too long (exp at most 7 days ahead)")
    email = claims.get("email")
    external_id = claims.get("external_id", claims.get("sub"))
    if not isinstance(email, str) and not isinstance(external_id, str):
        raise BadToken("the token names no one: give email or external_id (sub)")
    return SignedIdentity(
        email=email if isinstance(email, str) and email else None,
        external_id=external_id if isinstance(external_id, str) and external_id else None,
    )


def with_link_token(url: str, token: str) -> str:
    """``url`` with ``tf_verify=<token>`` added to its query (the fragment stays last)."""
    parts = urlsplit(url)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=f"{query}{LINK_PARAMETER}={token}"))


def _link_mac(app_secret: str, body: str) -> str:
    return _b64(hmac.new(_LINK_SALT + app_secret.encode(), body.encode(), hashlib.sha256).digest())


def sign_link_token(app_secret: str, contact_id: int, issued_at: int) -> str:
    """The ``tf_verify`` value an emailed link carries to the site."""
    body = _b64(json.dumps([contact_id, issued_at]).encode())
    return f"{body}.{_link_mac(app_secret, body)}"


def read_link_token(app_secret: str, token: str, now: float) -> int:
    """The contact id an emailed link's token names; raises ``BadToken``."""
    body, _, mac = token.partition(".")
    if not body or not hmac.compare_digest(mac, _link_mac(app_secret, body)):
        raise BadToken("the link's signature does not match")
    try:
        contact_id, issued_at = json.loads(_unb64(body))
        contact, issued = int(contact_id), int(issued_at)
    except (ValueError, TypeError) as exc:
        raise BadToken("the link's token is not shaped as Touchflow makes it") from exc
    if not 0 <= now - issued <= LINK_MAX_AGE_SECONDS:
        raise BadToken("the link is too old; open it again from the email")
    return contact
