"""API keys (secret, hashed) and site keys (public) for the web snippet.

An API key looks like ``tf_<prefix>_<secret>``. Only the prefix (to find the
row) and a SHA-256 of the whole key are stored: the secret has 256 bits of
entropy, so a fast hash is enough and lookups stay cheap on every API call.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

API_KEY_MARK = "tf_"
SITE_KEY_MARK = "tfs_"


@dataclass(frozen=True)
class NewApiKey:
    """A freshly made key: ``token`` is shown to the admin once and never stored."""

    token: str
    prefix: str
    key_hash: str


def hash_api_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_key() -> NewApiKey:
    prefix = secrets.token_hex(6)
    token = f"{API_KEY_MARK}{prefix}_{secrets.token_urlsafe(32)}"
    return NewApiKey(token=token, prefix=prefix, key_hash=hash_api_key(token))


def api_key_prefix(token: str) -> str | None:
    """The lookup prefix of a well-formed key, or None."""
    if not token.startswith(API_KEY_MARK):
        return None
    prefix, sep, secret = token[len(API_KEY_MARK) :].partition("_")
    if not sep or len(prefix) != 12 or not secret:
        return None
    return prefix


def api_key_matches(token: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(token), key_hash)


def new_site_key() -> str:
    return f"{SITE_KEY_MARK}{secrets.token_urlsafe(24)}"


def normalize_origin(value: str) -> str | None:
    """``https://Shop.example.com/`` -> ``https://shop.example.com``; None if not an origin."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    default_port = {"http": 80, "https": 443}[parts.scheme]
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    suffix = f":{port}" if port and port != default_port else ""
    return f"{parts.scheme}://{host}{suffix}"
