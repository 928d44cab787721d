"""The services handed to node code: the public base URL and an HMAC signer.

``sign`` makes unforgeable tokens for tracking and unsubscribe links; the web
side checks them with ``verify``. Both derive their key from SECRET_KEY with a
purpose label, so a token made for one use is worthless for another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

from nodes.sdk import EgressPolicy, Services

__all__ = ["build_services", "make_signer", "verify"]

PURPOSE = b"touchflow.links"


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), PURPOSE, hashlib.sha256).digest()


def make_signer(secret: str) -> Callable[[str], str]:
    """``sign(value) -> token``: 22 url-safe characters (128 bits of HMAC-SHA256)."""
    key = _key(secret)

    def sign(value: str) -> str:
        digest = hmac.new(key, value.encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    return sign


def verify(secret: str, value: str, token: str) -> bool:
    """Whether ``token`` was made by ``make_signer(secret)`` for ``value``."""
    return hmac.compare_digest(make_signer(secret)(value), token)


def build_services(
    base_url: str,
    secret: str,
    extras: Mapping[str, Any] | None = None,
    *,
    egress_allow: str = "",
) -> Services:
    return Services(
        base_url=base_url.rstrip("/"),
        sign=make_signer(secret),
        extras=extras or {},
        egress=EgressPolicy.parse(egress_allow),
    )
