"""The "webhook" channel: an HTTP POST, signed so the receiver can trust it.

Payload: ``nodes.sdk.WebhookPayload`` (``url``, ``body``, ``secret``). ``body`` is
sent as JSON unless it is a string. With a secret, ``Touchflow-Signature: t=<unix time>,v1=<hex>``
carries HMAC-SHA256 over ``"<t>.<body>"``; receivers recompute it and reject
old timestamps to stop replays. ``Idempotency-Key`` carries the outbox key.
The receiver's status and the start of its answer are returned as the
delivery's detail (kept in the delivery ledger) or in the error (on the outbox row).
"""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from nodes.sdk import Clock, SystemClock, WebhookPayload
from runtime.delivery import Delivered, Outgoing, PermanentError, read_payload
from runtime.delivery.errors import http_status_is_permanent
from runtime.egress import EgressClient, EgressRefused

__all__ = ["SIGNATURE_HEADER", "WebhookDeliverer", "signature", "verify_signature"]

SIGNATURE_HEADER = "Touchflow-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: int, tolerance: int = 300
) -> bool:
    """What a receiver does: the HMAC matches and the timestamp is recent (no replays)."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)


def _snippet(response: httpx.Response) -> str:
    return f"HTTP {response.status_code}: {response.text[:300]}"


class WebhookDeliverer:
    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        *,
        concurrency: int = 16,
    ) -> None:
        # The guarded client (runtime.egress): a typed URL never reaches internal addresses.
        self.client = client or EgressClient()
        self.clock = clock or SystemClock()
        self.concurrency = concurrency

    async def deliver(self, message: Outgoing) -> Delivered:
        payload = read_payload(WebhookPayload, message)
        url = payload.url
        if not url.startswith(("http://", "https://")):
            raise PermanentError(f"the webhook URL {url!r} is not an http(s) URL")
        body = payload.body
        if isinstance(body, str):
            content, content_type = body.encode(), "text/plain; charset=utf-8"
        else:
            content, content_type = json.dumps(body).encode(), "application/json"
        headers = {"Content-Type": content_type, "Idempotency-Key": message.idempotency_key}
        secret = payload.secret
        if secret:
            timestamp = int(self.clock.now().timestamp())
            headers[SIGNATURE_HEADER] = signature(str(secret), timestamp, content)
        try:
            response = await self.client.post(url, content=content, headers=headers)
        except httpx.TimeoutException as exc:
            raise TimeoutError(f"the receiver did not answer in time ({url})") from exc
        except EgressRefused as exc:
            raise PermanentError(str(exc)) from exc
        if response.is_success:
            return Delivered(
                provider_message_id=response.headers.get("x-request-id"),
                detail=_snippet(response),
            )
        if http_status_is_permanent(response.status_code):
            raise PermanentError(f"the receiver refused the webhook: {_snippet(response)}")
        raise RuntimeError(f"the receiver failed: {_snippet(response)}")

    async def aclose(self) -> None:
        """Close the HTTP client (on shutdown)."""
        await self.client.aclose()
