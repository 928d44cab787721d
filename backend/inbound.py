"""Inbound webhooks: other systems (CRM, shop) post JSON to a per-source URL.

The URL's token says which source it is; the source's secret proves the
sender: either an HMAC-SHA256 signature over ``"<timestamp>.<body>"`` in
``X-Touchflow-Signature: t=<unix>,v1=<hex>`` (preferred; replay-safe within
five minutes) or, for systems that can only add a static header,
``Authorization: Bearer <secret>``. The source's mapping picks the event
type, the customer and the properties out of the payload.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backend.contacts.normalize import InvalidValue
from backend.contacts.schemas import TrackIn
from backend.i18n import gettext as _

SIGNATURE_HEADER = "x-touchflow-signature"
TOLERANCE_SECONDS = 300
_MISSING = object()


class SourceMapping(BaseModel):
    """Where to find each part of an event in the posted JSON.

    Values starting with ``$.`` are dotted paths into the payload
    (``$.customer.email``); ``event_type`` may also be a fixed name.
    """

    model_config = ConfigDict(extra="forbid")

    event_type: str = Field(min_length=1, max_length=120)
    email: str | None = None
    external_id: str | None = None
    properties: str = "$"
    occurred_at: str | None = None
    idempotency_key: str | None = None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> bool:
    """True when the request carries a valid, fresh signature or the secret itself."""
    signature = headers.get(SIGNATURE_HEADER)
    if signature:
        parts = dict(p.split("=", 1) for p in signature.split(",") if "=" in p)
        try:
            timestamp = int(parts.get("t", ""))
        except ValueError:
            return False
        if abs(now - timestamp) > TOLERANCE_SECONDS:
            return False
        expected = sign(secret, timestamp, body)
        return hmac.compare_digest(expected, f"t={timestamp},v1={parts.get('v1', '')}")
    auth = headers.get("authorization", "")
    return auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip(), secret)


def _pick(payload: Any, path: str) -> Any:
    if path == "$":
        return payload
    current = payload
    for part in path.removeprefix("$.").split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _value(payload: Any, spec: str | None) -> Any:
    if spec is None:
        return None
    if not spec.startswith("$"):
        return spec
    found = _pick(payload, spec)
    return None if found is _MISSING else found


def to_track(mapping: SourceMapping, payload: Any, source_id: int) -> TrackIn:
    """Turn one posted payload into an event; raises InvalidValue saying what is missing."""
    event_type = _value(payload, mapping.event_type)
    if not isinstance(event_type, str) or not event_type:
        raise InvalidValue(
            "event_type", _("the payload has no event type at %(p)s") % {"p": mapping.event_type}
        )
    properties = _value(payload, mapping.properties)
    if not isinstance(properties, Mapping):
        properties = {"value": properties}
    key = _value(payload, mapping.idempotency_key)
    data = {
        "type": event_type,
        "email": _value(payload, mapping.email),
        "external_id": _value(payload, mapping.external_id),
        "properties": dict(properties),
        "occurred_at": _value(payload, mapping.occurred_at),
        "idempotency_key": f"source:{source_id}:{key}" if key is not None else None,
    }
    for name in ("email", "external_id"):
        if data[name] is not None:
            data[name] = str(data[name])
    try:
        return TrackIn.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise InvalidValue(where, first["msg"]) from exc
